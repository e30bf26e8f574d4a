package storage

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
)

// Action versions follow Semantic Versioning 2.0.0 without build metadata:
// MAJOR.MINOR.PATCH, optionally followed by -prerelease. Build metadata is
// refused because two versions differing only in it have the same
// precedence, and "latest" must name exactly one.

// maxVersionLen bounds a version string; real ones are a dozen bytes.
const maxVersionLen = 128

// versionRule describes the versions ValidateActionVersion accepts.
const versionRule = "want MAJOR.MINOR.PATCH with an optional -prerelease, e.g. 1.0.0 or 2.1.0-rc.1"

// ValidateActionVersion reports, with an error naming the problem, whether
// v is not a valid action version.
func ValidateActionVersion(v string) error {
	_, _, err := splitVersion(v)
	return err
}

// CompareActionVersions compares two action versions by semantic-version
// precedence and returns -1, 0 or +1. Numbers compare as numbers (1.10.0 is
// above 1.9.0) and a release is above its prereleases. The order is total
// over every string, so that a driver picks the same "latest" on every
// replica whatever it stored: an invalid version is below every valid one,
// and invalid versions compare by bytes.
func CompareActionVersions(a, b string) int {
	coreA, preA, errA := splitVersion(a)
	coreB, preB, errB := splitVersion(b)
	switch {
	case errA != nil && errB != nil:
		return strings.Compare(a, b)
	case errA != nil:
		return -1
	case errB != nil:
		return +1
	}
	for i := range coreA {
		if c := compareNumeric(coreA[i], coreB[i]); c != 0 {
			return c
		}
	}
	// A release (no prerelease) is above every prerelease of it.
	switch {
	case preA == nil && preB == nil:
		return 0
	case preA == nil:
		return +1
	case preB == nil:
		return -1
	}
	for i := 0; i < len(preA) && i < len(preB); i++ {
		if c := comparePrerelease(preA[i], preB[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(preA), len(preB))
}

// splitVersion parses v into its three numbers and its prerelease
// identifiers (nil for a release).
func splitVersion(v string) (core [3]string, pre []string, err error) {
	if v == "" {
		return core, nil, errors.New("empty version: " + versionRule)
	}
	if len(v) > maxVersionLen {
		return core, nil, fmt.Errorf("version longer than %d bytes", maxVersionLen)
	}
	release, prerelease, hasPre := strings.Cut(v, "-")
	nums := strings.Split(release, ".")
	if len(nums) != 3 {
		return core, nil, fmt.Errorf("invalid version %q: %s", v, versionRule)
	}
	for i, n := range nums {
		if !numeric(n) {
			return core, nil, fmt.Errorf("invalid version %q: %q is not a number without leading zeros (%s)", v, n, versionRule)
		}
		core[i] = n
	}
	if !hasPre {
		return core, nil, nil
	}
	pre = strings.Split(prerelease, ".")
	for _, id := range pre {
		if !prereleaseID(id) {
			return core, nil, fmt.Errorf("invalid version %q: prerelease identifier %q must be non-empty ASCII letters, digits or '-', and a number without leading zeros (%s)", v, id, versionRule)
		}
	}
	return core, pre, nil
}

// numeric reports whether s is a decimal number without leading zeros.
func numeric(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	return allDigits(s)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// prereleaseID reports whether s is a valid prerelease identifier.
func prereleaseID(s string) bool {
	if s == "" {
		return false
	}
	if allDigits(s) {
		return numeric(s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// compareNumeric compares decimal numbers without leading zeros, of any
// length: the longer is larger, and equal lengths compare as text.
func compareNumeric(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// comparePrerelease compares prerelease identifiers: numbers as numbers,
// below every alphanumeric identifier, which compare as ASCII text.
func comparePrerelease(a, b string) int {
	na, nb := allDigits(a), allDigits(b)
	switch {
	case na && nb:
		return compareNumeric(a, b)
	case na:
		return -1
	case nb:
		return +1
	}
	return strings.Compare(a, b)
}
