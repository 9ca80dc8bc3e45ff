package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The Kubernetes manifests as a cluster would get them: `kustomize build`
// of the base and of every overlay, each rendered workload held to what an
// SRE's admission policy asks (probes, limits, a non-root read-only
// container), every Secret mounted as files, every reference resolvable.

// overlaySecrets are the files an operator writes beside
// `awctl credentials --dir credentials` before building an overlay (never
// committed): the test writes them with placeholder contents.
var overlaySecrets = []string{
	"secrets/auditor-token", "secrets/webhook-admin-token", "secrets/slack-token", "secrets/smtp-password",
	"secrets/upstream/ap-main",
}

// makeCredentials writes what `awctl credentials --dir credentials` writes
// (every role's nkey, the servers' auth.conf, the checkpoint key), with the
// same code, so the overlays name the files it really makes.
func makeCredentials(t *testing.T, dir string) {
	t.Helper()
	if _, err := eventbus.LoadCredentials(dir, true); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.EnsureKey(dir); err != nil {
		t.Fatal(err)
	}
}

func TestKustomizeBuildEveryOverlay(t *testing.T) {
	overlays, err := filepath.Glob("k8s/overlays/*")
	if err != nil || len(overlays) < 2 {
		t.Fatalf("overlays: %v %v", overlays, err)
	}
	for _, dir := range append([]string{"k8s/base"}, overlays...) {
		t.Run(dir, func(t *testing.T) {
			root := t.TempDir()
			copyTree(t, "k8s", filepath.Join(root, "k8s"))
			path := filepath.Join(root, dir)
			if dir != "k8s/base" {
				makeCredentials(t, filepath.Join(path, "credentials"))
				for _, f := range overlaySecrets {
					p := filepath.Join(path, f)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte("placeholder\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			objs := build(t, path)
			checkWorkloads(t, objs, dir != "k8s/base")
		})
	}
}

// object is a rendered manifest, as plain maps.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

func build(t *testing.T, path string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), path)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", path, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

func checkWorkloads(t *testing.T, objs []object, complete bool) {
	have := map[string]bool{}
	for _, o := range objs {
		have[o.kind()+"/"+o.name()] = true
		if ns := str(o, "metadata", "namespace"); o.kind() != "Namespace" && ns != "accountwatch" {
			t.Errorf("%s/%s in namespace %q", o.kind(), o.name(), ns)
		}
	}
	var pdbs []object
	for _, o := range objs {
		if o.kind() == "PodDisruptionBudget" {
			pdbs = append(pdbs, o)
		}
	}
	workloads := 0
	for _, o := range objs {
		var pod object
		switch o.kind() {
		case "Deployment", "StatefulSet":
			pod = obj(o, "spec", "template")
			if !covered(pdbs, obj(pod, "metadata", "labels")) {
				t.Errorf("%s/%s: no PodDisruptionBudget selects it", o.kind(), o.name())
			}
		case "Job":
			pod = obj(o, "spec", "template")
		default:
			continue
		}
		workloads++
		id := o.kind() + "/" + o.name()
		// Prometheus' scrape config keeps these pods and their port "ops".
		if obj(pod, "metadata", "labels")["app.kubernetes.io/part-of"] != "accountwatch" {
			t.Errorf("%s: pods not labelled app.kubernetes.io/part-of=accountwatch (Prometheus would not scrape them)", id)
		}
		spec := obj(pod, "spec")
		if b, _ := spec["automountServiceAccountToken"].(bool); b || spec["automountServiceAccountToken"] == nil {
			t.Errorf("%s: mounts a service account token it does not use", id)
		}
		podSC := obj(spec, "securityContext")
		containers := list(spec, "containers")
		if len(containers) == 0 {
			t.Errorf("%s: no containers", id)
		}
		for _, c := range containers {
			c := c.(map[string]any)
			cid := id + " container " + str(c, "name")
			sc := obj(c, "securityContext")
			if !truth(sc, podSC, "runAsNonRoot") {
				t.Errorf("%s: may run as root (runAsNonRoot not true)", cid)
			}
			if uid, ok := num(sc, podSC, "runAsUser"); !ok || uid == 0 {
				t.Errorf("%s: runAsUser %v", cid, uid)
			}
			if b, _ := sc["readOnlyRootFilesystem"].(bool); !b {
				t.Errorf("%s: root filesystem writable", cid)
			}
			if b, ok := sc["allowPrivilegeEscalation"].(bool); !ok || b {
				t.Errorf("%s: allowPrivilegeEscalation not false", cid)
			}
			if drop := list(obj(sc, "capabilities"), "drop"); len(drop) != 1 || drop[0] != "ALL" {
				t.Errorf("%s: capabilities not dropped: %v", cid, drop)
			}
			for _, r := range []string{"cpu", "memory"} {
				if str(c, "resources", "limits", r) == "" || str(c, "resources", "requests", r) == "" {
					t.Errorf("%s: no %s request and limit", cid, r)
				}
			}
			if strings.Contains(str(c, "image"), "accountwatch/") && o.kind() != "Job" && !hasPort(c, "ops") {
				t.Errorf("%s: no port named ops (/metrics, /healthz, /readyz)", cid)
			}
			if o.kind() != "Job" {
				for _, p := range []string{"readinessProbe", "livenessProbe"} {
					if len(obj(c, p)) == 0 {
						t.Errorf("%s: no %s", cid, p)
					}
				}
			}
			// Secrets are files: no secret value in the environment.
			for _, e := range list(c, "env") {
				e := e.(map[string]any)
				n := str(e, "name")
				if (strings.HasSuffix(n, "TOKEN") || strings.HasSuffix(n, "PASSWORD") || strings.HasSuffix(n, "SECRET") || strings.HasSuffix(n, "SEED")) && e["value"] != nil {
					t.Errorf("%s: secret %s given as a value, not a file", cid, n)
				}
				if strings.HasSuffix(n, "_FILE") && !mounted(c, str(e, "value")) {
					t.Errorf("%s: %s=%s is on no mounted volume", cid, n, str(e, "value"))
				}
			}
		}
		if !complete {
			continue
		}
		// Every volume's Secret or ConfigMap is rendered with the overlay.
		for _, v := range list(spec, "volumes") {
			v := v.(map[string]any)
			if s := str(v, "secret", "secretName"); s != "" && !have["Secret/"+s] {
				t.Errorf("%s: volume %s names Secret %s, which the overlay does not make", id, str(v, "name"), s)
			}
			if s := str(v, "configMap", "name"); s != "" && !have["ConfigMap/"+s] {
				t.Errorf("%s: volume %s names ConfigMap %s, which the overlay does not make", id, str(v, "name"), s)
			}
		}
		for _, c := range containers {
			for _, f := range list(c.(map[string]any), "envFrom") {
				if s := str(f.(map[string]any), "configMapRef", "name"); s != "" && !have["ConfigMap/"+s] {
					t.Errorf("%s: envFrom ConfigMap %s is not rendered", id, s)
				}
			}
		}
	}
	// The services, NATS and the provisioning Job at least.
	for _, want := range []string{"StatefulSet/nats", "Job/provision", "Deployment/poller", "Deployment/slack-notifier", "Deployment/email-notifier", "Deployment/webhook-dispatcher", "Deployment/auditor"} {
		if !have[want] {
			t.Errorf("no %s rendered", want)
		}
	}
	for _, o := range objs {
		if o.kind() == "StatefulSet" && o.name() == "nats" {
			if r, _ := obj(o, "spec")["replicas"].(float64); r != 3 {
				t.Errorf("NATS has %v replicas, want 3", r)
			}
		}
	}
	if workloads == 0 {
		t.Fatal("no workloads rendered")
	}
}

// covered: some PodDisruptionBudget's selector matches these pod labels.
func covered(pdbs []object, labels map[string]any) bool {
	for _, p := range pdbs {
		sel := obj(p, "spec", "selector", "matchLabels")
		ok := len(sel) > 0
		for k, v := range sel {
			if labels[k] != v {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func hasPort(c map[string]any, name string) bool {
	for _, p := range list(c, "ports") {
		if str(p.(map[string]any), "name") == name {
			return true
		}
	}
	return false
}

// mounted: path lies under one of the container's volume mounts.
func mounted(c map[string]any, path string) bool {
	for _, m := range list(c, "volumeMounts") {
		if mp := str(m.(map[string]any), "mountPath"); mp != "" && strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") {
			return true
		}
	}
	return false
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, _ := m[p].(map[string]any)
		if next == nil {
			return map[string]any{}
		}
		m = next
	}
	return m
}

func str(m map[string]any, path ...string) string {
	s, _ := obj(m, path[:len(path)-1]...)[path[len(path)-1]].(string)
	return s
}

func list(m map[string]any, key string) []any {
	l, _ := m[key].([]any)
	return l
}

// truth: the container's setting, else the pod's.
func truth(c, pod map[string]any, key string) bool {
	if b, ok := c[key].(bool); ok {
		return b
	}
	b, _ := pod[key].(bool)
	return b
}

func num(c, pod map[string]any, key string) (float64, bool) {
	if n, ok := c[key].(float64); ok {
		return n, true
	}
	n, ok := pod[key].(float64)
	return n, ok
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
