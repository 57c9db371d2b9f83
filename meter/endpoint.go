package meter

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// OtherEndpoint is the endpoint recorded for calls whose template would
// exceed the account's cap on distinct endpoints, so one client cannot
// explode storage or label cardinality.
const OtherEndpoint = "other"

// idSegment replaces a path segment that identifies a resource.
const idSegment = "{id}"

// maxEndpointLen caps a folded endpoint, in bytes.
const maxEndpointLen = 256

// EndpointFolder turns request paths into route templates such as
// /v1/users/{id}. It is immutable and safe for concurrent use; a nil
// *EndpointFolder applies only the built-in rules.
type EndpointFolder struct {
	extra []*regexp.Regexp
}

// NewEndpointFolder returns a folder that, besides the built-in rules,
// folds every path segment fully matching one of the extra regular
// expressions (RE2 syntax), e.g. `usr_[a-z0-9]+`.
func NewEndpointFolder(extra []string) (*EndpointFolder, error) {
	f := &EndpointFolder{}
	for i, pat := range extra {
		field := fmt.Sprintf("endpoint_patterns[%d]", i)
		if pat == "" {
			return nil, Invalid(field, "must not be empty")
		}
		// Anchoring makes "match" mean the whole segment, as documented,
		// whether or not the pattern carries its own ^ and $.
		re, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return nil, Invalid(field, "invalid regexp %q: %v", pat, err)
		}
		f.extra = append(f.extra, re)
	}
	return f, nil
}

// Fold returns the route template of a request path: the query string and
// fragment are dropped, empty segments (duplicate, leading or trailing
// slashes) are removed, and each segment that is a resource id becomes
// {id}. Ids are decimal numbers, UUIDs, hex strings of 16 or more digits,
// segments matching an extra pattern, and segments no route would contain
// (control characters, invalid UTF-8, longer than the cap). Segments already
// in {name} form are kept, so callers may pass templates. The result starts
// with "/" and is at most 256 bytes: segments that would not fit are
// dropped whole, which keeps Fold idempotent.
func (f *EndpointFolder) Fold(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	// Build on the stack; most paths are already templates, and returning
	// the input for those saves the only allocation.
	var buf [maxEndpointLen]byte
	out := buf[:0]
	for rest := path; rest != ""; {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		if seg == "" {
			continue
		}
		seg = f.foldSegment(seg)
		if len(out)+1+len(seg) > maxEndpointLen {
			break
		}
		out = append(append(out, '/'), seg...)
	}
	switch {
	case len(out) == 0:
		return "/"
	case string(out) == path:
		return path
	}
	return string(out)
}

// foldSegment returns seg, or {id} when seg identifies a resource.
func (f *EndpointFolder) foldSegment(seg string) string {
	switch {
	case !isPlainSegment(seg):
		return idSegment
	case isTemplateSegment(seg):
		return seg
	case isDecimal(seg), isUUID(seg), isLongHex(seg):
		return idSegment
	case f != nil && f.matchesExtra(seg):
		return idSegment
	}
	return seg
}

func (f *EndpointFolder) matchesExtra(seg string) bool {
	for _, re := range f.extra {
		if re.MatchString(seg) {
			return true
		}
	}
	return false
}

// isTemplateSegment reports whether seg is a placeholder like {id}.
func isTemplateSegment(seg string) bool {
	return len(seg) >= 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}

func isDecimal(seg string) bool {
	for i := 0; i < len(seg); i++ {
		if seg[i] < '0' || seg[i] > '9' {
			return false
		}
	}
	return seg != ""
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isLongHex reports a hex string of 16 digits or more (hashes, object ids);
// shorter ones could be words such as "cafe" or "add".
func isLongHex(seg string) bool {
	if len(seg) < 16 {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if !isHexDigit(seg[i]) {
			return false
		}
	}
	return true
}

// isUUID reports the 8-4-4-4-12 hex form, in any case.
func isUUID(seg string) bool {
	if len(seg) != 36 {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if seg[i] != '-' {
				return false
			}
		} else if !isHexDigit(seg[i]) {
			return false
		}
	}
	return true
}

// isPlainSegment rejects what no route template contains: control bytes
// (which would reach logs and exports verbatim), invalid UTF-8 (which
// Prometheus labels and JSON cannot carry), and segments too long to fit.
func isPlainSegment(seg string) bool {
	if len(seg) >= maxEndpointLen {
		return false
	}
	ascii := true
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	return ascii || utf8.ValidString(seg)
}

// NormalizeMethod returns the HTTP method m in upper case, and false unless
// it is 1 to 16 ASCII letters; there is no default for an empty method.
func NormalizeMethod(m string) (string, bool) {
	if len(m) < 1 || len(m) > 16 {
		return "", false
	}
	lower := false
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c < 'A' || c > 'Z':
			return "", false
		}
	}
	if lower {
		m = strings.ToUpper(m)
	}
	return m, true
}
