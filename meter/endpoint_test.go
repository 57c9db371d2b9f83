package meter_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meterd/meterd/meter"
)

func TestEndpointFolder_Fold(t *testing.T) {
	folder, err := meter.NewEndpointFolder([]string{`usr_[a-z0-9]+`, `^[A-Z]{2}-\d{4}$`})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("abcdefghi/", 40) // 400 bytes of 9-byte segments
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"Example", "/v1/users/123/orders/550e8400-e29b-41d4-a716-446655440000", "/v1/users/{id}/orders/{id}"},
		{"Root", "/", "/"},
		{"Empty", "", "/"},
		{"QueryOnly", "?a=1", "/"},
		{"Plain", "/v1/health", "/v1/health"},
		{"Number", "/v1/items/42", "/v1/items/{id}"},
		{"Zero", "/v1/items/0", "/v1/items/{id}"},
		{"SignedNumberKept", "/v1/items/-42", "/v1/items/-42"},
		{"VersionKept", "/v2/items", "/v2/items"},
		{"UUIDLower", "/o/550e8400-e29b-41d4-a716-446655440000/x", "/o/{id}/x"},
		{"UUIDUpper", "/o/550E8400-E29B-41D4-A716-446655440000", "/o/{id}"},
		{"UUIDWrongDashes", "/o/550e8400e-29b-41d4-a716-446655440000", "/o/550e8400e-29b-41d4-a716-446655440000"},
		{"ShortHexKept", "/o/deadbeef", "/o/deadbeef"},
		{"FifteenHexKept", "/o/0123456789abcde", "/o/0123456789abcde"},
		{"SixteenHexFolded", "/o/0123456789abcdef", "/o/{id}"},
		{"LongHexFolded", "/commits/9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", "/commits/{id}"},
		{"QueryStripped", "/v1/search?q=1/2&page=3", "/v1/search"},
		{"FragmentStripped", "/docs/7#section", "/docs/{id}"},
		{"DoubleSlashes", "//v1///users//9", "/v1/users/{id}"},
		{"NoLeadingSlash", "v1/users", "/v1/users"},
		{"TrailingSlashDropped", "/v1/users/", "/v1/users"},
		{"AlreadyTemplated", "/v1/users/{user_id}/orders/{id}", "/v1/users/{user_id}/orders/{id}"},
		{"ExtraPattern", "/v1/users/usr_8x2k/profile", "/v1/users/{id}/profile"},
		{"ExtraPatternFullMatchOnly", "/v1/users/xusr_8x2k", "/v1/users/xusr_8x2k"},
		{"ExtraPatternAnchored", "/v1/tickets/AB-1234", "/v1/tickets/{id}"},
		{"ControlBytes", "/v1/a\nb/c", "/v1/{id}/c"},
		{"InvalidUTF8", "/v1/\xff\xfe/c", "/v1/{id}/c"},
		{"UnicodeKept", "/v1/café", "/v1/café"},
		{"SegmentTooLong", "/v1/" + strings.Repeat("z", 300) + "/x", "/v1/{id}/x"},
		{"CappedAtSegment", long, strings.TrimSuffix("/"+long[:250], "/")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := folder.Fold(tt.in); got != tt.want {
				t.Fatalf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEndpointFolder_Nil(t *testing.T) {
	var folder *meter.EndpointFolder
	if got := folder.Fold("/a/12/usr_x"); got != "/a/{id}/usr_x" {
		t.Fatalf("nil folder: Fold = %q", got)
	}
}

func TestNewEndpointFolder(t *testing.T) {
	tests := []struct {
		name  string
		extra []string
		field string
	}{
		{"None", nil, ""},
		{"Good", []string{`usr_[a-z0-9]+`}, ""},
		{"BadRegexp", []string{`ok`, `usr_[a-z`}, "endpoint_patterns[1]"},
		{"EmptyPattern", []string{""}, "endpoint_patterns[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := meter.NewEndpointFolder(tt.extra)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var verr *meter.ValidationError
			if !errors.As(err, &verr) || verr.Field != tt.field {
				t.Fatalf("error = %v, want a *ValidationError for %s", err, tt.field)
			}
			if bad := tt.extra[len(tt.extra)-1]; bad != "" && !strings.Contains(err.Error(), bad) {
				t.Fatalf("error %q does not name the pattern %q", err, bad)
			}
		})
	}
}

func TestNormalizeMethod(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"GET", "GET", true},
		{"post", "POST", true},
		{"Patch", "PATCH", true},
		{"PROPFIND", "PROPFIND", true},
		{"ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOP", true},
		{"", "", false},
		{"ABCDEFGHIJKLMNOPQ", "", false},
		{"GE T", "", false},
		{"GET\n", "", false},
		{"M-SEARCH", "", false},
		{"GÉT", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := meter.NormalizeMethod(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("NormalizeMethod(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzFold(f *testing.F) {
	for _, seed := range []string{
		"", "/", "?", "#", "//", "/v1/users/123/orders/550e8400-e29b-41d4-a716-446655440000",
		"/v1/users/usr_abc?x=1", "v1//a/{id}/", "/{", "/}", "/{}", "/a/\x00/b",
		"/\xff", strings.Repeat("/1", 200), strings.Repeat("x", 300),
		strings.Repeat("abcdefg/", 40) + "12345",
	} {
		f.Add(seed)
	}
	folder, err := meter.NewEndpointFolder([]string{`usr_[a-z0-9]+`})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := folder.Fold(in)
		if !strings.HasPrefix(out, "/") || strings.ContainsAny(out, "?#") || len(out) > 256 {
			t.Fatalf("Fold(%q) = %q: want a /-prefixed path of at most 256 bytes without ? or #", in, out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("Fold(%q) = %q: invalid UTF-8", in, out)
		}
		if again := folder.Fold(out); again != out {
			t.Fatalf("Fold not idempotent: Fold(%q) = %q, Fold(that) = %q", in, out, again)
		}
	})
}

func BenchmarkFold(b *testing.B) {
	folder, err := meter.NewEndpointFolder(nil)
	if err != nil {
		b.Fatal(err)
	}
	paths := []string{
		"/v1/users/123/orders/550e8400-e29b-41d4-a716-446655440000",
		"/v1/health",
		"/v1/search?q=shoes&page=2",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		folder.Fold(paths[i%len(paths)])
	}
}
