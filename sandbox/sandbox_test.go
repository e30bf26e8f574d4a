package sandbox

import "testing"

func TestCapabilityValidate(t *testing.T) {
	tests := []struct {
		c  Capability
		ok bool
	}{
		{"clock", true},
		{"random", true},
		{"net:api.github.com", true},
		{"net:*", true},
		{"credential:github", true},
		{"blob:read", true},
		{"blob:write", true},
		{"", false},
		{"clock:fast", false},
		{"net:", false},
		{"net", false},
		{"net:http://x", false},
		{"blob:delete", false},
		{"fs:/", false},
	}
	for _, tt := range tests {
		if err := tt.c.Validate(); (err == nil) != tt.ok {
			t.Errorf("Capability(%q).Validate() = %v, want ok=%v", tt.c, err, tt.ok)
		}
	}
}

func TestGrants(t *testing.T) {
	tests := []struct {
		granted []Capability
		want    Capability
		ok      bool
	}{
		{nil, "clock", false},
		{[]Capability{"clock"}, "clock", true},
		{[]Capability{"net:*"}, "net:example.com", true},
		{[]Capability{"net:*"}, "credential:github", false},
		{[]Capability{"net:api.github.com"}, "net:example.com", false},
		{[]Capability{"credential:github"}, "credential:github", true},
	}
	for _, tt := range tests {
		if got := Grants(tt.granted, tt.want); got != tt.ok {
			t.Errorf("Grants(%v, %q) = %v, want %v", tt.granted, tt.want, got, tt.ok)
		}
	}
}
