package storage

import (
	"slices"
	"testing"
)

func TestValidateActionVersion(t *testing.T) {
	for _, v := range []string{"0.0.0", "1.0.0", "1.10.0", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x-y-z.--", "2.0.0-rc.1"} {
		if err := ValidateActionVersion(v); err != nil {
			t.Errorf("ValidateActionVersion(%q) = %v, want nil", v, err)
		}
	}
	for _, v := range []string{"", "1", "1.0", "1.0.0.0", "01.0.0", "1.02.0", "v1.0.0", "1.0.0-", "1.0.0-a..b", "1.0.0-01", "1.0.0+build", "1.0.0-a+b", "1.0.x", " 1.0.0", "1.0.0-é", "-1.0.0"} {
		if err := ValidateActionVersion(v); err == nil {
			t.Errorf("ValidateActionVersion(%q) = nil, want an error", v)
		}
	}
}

func TestCompareActionVersions(t *testing.T) {
	// In ascending precedence, as in the examples of SemVer 2.0.0 §11,
	// with invalid versions first.
	ordered := []string{
		"", "not-a-version", "v2.0.0",
		"0.9.0", "1.0.0-0.3.7", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.9.0", "1.10.0",
		"2.0.0", "10.0.0", "99999999999999999999999.0.0",
	}
	for i, a := range ordered {
		for j, b := range ordered {
			if got, want := CompareActionVersions(a, b), cmpInt(i, j); got != want {
				t.Errorf("CompareActionVersions(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
	shuffled := slices.Clone(ordered)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, CompareActionVersions)
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorted = %q, want %q", shuffled, ordered)
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return +1
	}
	return 0
}
