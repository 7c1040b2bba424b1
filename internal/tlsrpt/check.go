package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CheckReport checks a JSON report against RFC 8460 §4.4 as a receiver reads it: every
// required field present with its type (strings, integers, RFC 3339 date-times, the policy
// types), whoever made the report. The tests check tern's reports with it; there is no
// published JSON schema to check them with.
func CheckReport(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("tlsrpt report: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("tlsrpt report: "+format, args...)) }
	str := func(obj map[string]any, path, key string, required bool) {
		v, ok := obj[key]
		if !ok {
			if required {
				bad("%s%s missing", path, key)
			}
			return
		}
		if _, ok := v.(string); !ok {
			bad("%s%s is not a string", path, key)
		}
	}
	integer := func(obj map[string]any, path, key string) {
		f, ok := obj[key].(float64)
		if !ok || f != float64(int64(f)) || f < 0 {
			bad("%s%s is not a count", path, key)
		}
	}
	strs := func(obj map[string]any, path, key string) {
		v, ok := obj[key]
		if !ok {
			return
		}
		l, ok := v.([]any)
		if !ok {
			bad("%s%s is not a list", path, key)
			return
		}
		for _, s := range l {
			if _, ok := s.(string); !ok {
				bad("%s%s holds a non-string", path, key)
			}
		}
	}
	object := func(obj map[string]any, path, key string) map[string]any {
		o, ok := obj[key].(map[string]any)
		if !ok {
			bad("%s%s missing or not an object", path, key)
		}
		return o
	}

	for _, k := range []string{"organization-name", "contact-info", "report-id"} {
		str(m, "", k, true)
	}
	if dr := object(m, "", "date-range"); dr != nil {
		for _, k := range []string{"start-datetime", "end-datetime"} {
			s, _ := dr[k].(string)
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				bad("date-range.%s %q is not an RFC 3339 date-time", k, s)
			}
		}
	}
	pols, ok := m["policies"].([]any)
	if !ok {
		bad("policies missing or not a list")
	}
	for i, p := range pols {
		path := fmt.Sprintf("policies[%d].", i)
		pr, ok := p.(map[string]any)
		if !ok {
			bad("%s is not an object", path)
			continue
		}
		if pol := object(pr, path, "policy"); pol != nil {
			str(pol, path+"policy.", "policy-type", true)
			switch PolicyType(fmt.Sprint(pol["policy-type"])) {
			case PolicySTS, PolicyTLSA, PolicyNotFound:
			default:
				bad("%spolicy.policy-type %v is not sts, tlsa or no-policy-found", path, pol["policy-type"])
			}
			str(pol, path+"policy.", "policy-domain", true)
			strs(pol, path+"policy.", "policy-string")
			strs(pol, path+"policy.", "mx-host")
		}
		if sum := object(pr, path, "summary"); sum != nil {
			integer(sum, path+"summary.", "total-successful-session-count")
			integer(sum, path+"summary.", "total-failure-session-count")
		}
		fds, ok := pr["failure-details"]
		if !ok {
			continue
		}
		list, ok := fds.([]any)
		if !ok {
			bad("%sfailure-details is not a list", path)
			continue
		}
		for j, fd := range list {
			fpath := fmt.Sprintf("%sfailure-details[%d].", path, j)
			f, ok := fd.(map[string]any)
			if !ok {
				bad("%s is not an object", fpath)
				continue
			}
			str(f, fpath, "result-type", true)
			integer(f, fpath, "failed-session-count")
			for _, k := range []string{"sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo", "receiving-ip",
				"additional-information", "failure-reason-code"} {
				str(f, fpath, k, false)
			}
		}
	}
	return errors.Join(errs...)
}
