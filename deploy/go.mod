module github.com/accountwatch/accountwatch/deploy

go 1.26.7

require (
	github.com/blang/semver/v4 v4.0.0 // indirect
	github.com/prometheus/prometheus v0.316.0 // indirect
	sigs.k8s.io/kustomize/api v0.21.2 // indirect
)
