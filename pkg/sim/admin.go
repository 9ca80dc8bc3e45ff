package sim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

func (s *Server) routesAdmin() {
	h := func(pattern string, f func(http.ResponseWriter, *http.Request) (any, error)) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if s.adminTok != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+s.adminTok)) != 1 {
				writeAdmin(w, http.StatusUnauthorized, map[string]string{"error": "admin token required"})
				return
			}
			v, err := f(w, r)
			switch {
			case errors.Is(err, ErrNotFound):
				writeAdmin(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case err != nil:
				writeAdmin(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			case v == nil:
				w.WriteHeader(http.StatusNoContent)
			default:
				writeAdmin(w, http.StatusOK, v)
			}
		})
	}
	h("GET /admin/state", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		return s.State.Snapshot(limit), nil
	})
	h("GET /admin/stats", func(http.ResponseWriter, *http.Request) (any, error) { return s.Stats(), nil })
	h("POST /admin/changes", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var c Change
		if err := decodeAdmin(r, &c); err != nil {
			return nil, err
		}
		return nil, s.Apply(c)
	})
	h("PATCH /admin/activeplatform/accounts/{id}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return nil, errors.New("account id must be a number")
		}
		var set map[string]any
		if err := decodeAdmin(r, &set); err != nil {
			return nil, err
		}
		if err := s.State.SetAP(id, set); err != nil {
			return nil, err
		}
		a, _ := s.State.APAccount(id)
		return a, nil
	})
	h("POST /admin/activeplatform/accounts", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var a APAccount
		if err := decodeAdmin(r, &a); err != nil {
			return nil, err
		}
		return nil, s.State.AddAP(a)
	})
	h("DELETE /admin/activeplatform/accounts/{id}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return nil, errors.New("account id must be a number")
		}
		return nil, s.State.RemoveAP(id)
	})
	h("PATCH /admin/bss/customers/{uid}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var set map[string]any
		if err := decodeAdmin(r, &set); err != nil {
			return nil, err
		}
		if err := s.State.SetCustomer(r.PathValue("uid"), set); err != nil {
			return nil, err
		}
		c, _ := s.State.Customer(r.PathValue("uid"))
		return c, nil
	})
	h("POST /admin/bss/customers", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var c BSSCustomer
		if err := decodeAdmin(r, &c); err != nil {
			return nil, err
		}
		return nil, s.State.AddCustomer(c)
	})
	h("DELETE /admin/bss/customers/{uid}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return nil, s.State.RemoveCustomer(r.PathValue("uid"))
	})
	h("PATCH /admin/cams/{space}/{number}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var set map[string]any
		if err := decodeAdmin(r, &set); err != nil {
			return nil, err
		}
		if err := s.State.SetProfile(r.PathValue("space"), r.PathValue("number"), set); err != nil {
			return nil, err
		}
		p, _ := s.State.Phone(r.PathValue("space"), r.PathValue("number"))
		return p, nil
	})
	h("POST /admin/cams/{space}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var p Phone
		if err := decodeAdmin(r, &p); err != nil {
			return nil, err
		}
		return nil, s.State.AddPhone(r.PathValue("space"), p)
	})
	h("DELETE /admin/cams/{space}/{number}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return nil, s.State.RemovePhone(r.PathValue("space"), r.PathValue("number"))
	})
	h("GET /admin/faults", func(http.ResponseWriter, *http.Request) (any, error) { return s.Faults, nil })
	h("PUT /admin/faults/{endpoint}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		var f Fault
		if err := decodeAdmin(r, &f); err != nil {
			return nil, err
		}
		return nil, s.Faults.Set(r.PathValue("endpoint"), f)
	})
	h("DELETE /admin/faults/{endpoint}", func(_ http.ResponseWriter, r *http.Request) (any, error) {
		s.Faults.Clear(r.PathValue("endpoint"))
		return nil, nil
	})
	h("DELETE /admin/faults", func(http.ResponseWriter, *http.Request) (any, error) {
		s.Faults.Clear("")
		return nil, nil
	})
}

func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("body: " + err.Error())
	}
	return nil
}

func writeAdmin(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
