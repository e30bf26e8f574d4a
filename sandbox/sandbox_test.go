package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

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

func TestClassGrant(t *testing.T) {
	tests := []struct {
		allow, declared, want []Capability
	}{
		{[]Capability{"*"}, []Capability{"net:*", "credential:*"}, []Capability{"net:*", "credential:*"}},
		{[]Capability{"net:api.github.com"}, []Capability{"net:*", "credential:*"}, []Capability{"net:api.github.com"}},
		{[]Capability{"net:*", "clock"}, []Capability{"net:a.example", "random"}, []Capability{"net:a.example"}},
		{[]Capability{"net:*.example.com"}, []Capability{"net:api.example.com", "net:example.com"}, []Capability{"net:api.example.com"}},
		{nil, []Capability{"net:*"}, nil},
	}
	for _, tt := range tests {
		got := Class{Allow: tt.allow}.Grant(tt.declared)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("allow %v, declared %v: granted %v, want %v", tt.allow, tt.declared, got, tt.want)
		}
	}
}

func TestPolicyIsolatesCommunity(t *testing.T) {
	p := Policy{
		Trusted:   Class{Name: "trusted", Patterns: []string{"builtin.*"}, Isolation: IsolationNone},
		Community: Class{Name: "community", Patterns: []string{"community.*"}, Isolation: IsolationNone},
		Default:   Class{Name: "default", Isolation: IsolationCapabilityGated},
	}
	if c := p.ClassOf("community.x@1.0.0"); c.Name != "community" || c.Isolation != IsolationIsolated {
		t.Errorf("community action classed %s/%s", c.Name, c.Isolation)
	}
	if c := p.ClassOf("builtin.http"); c.Name != "trusted" {
		t.Errorf("builtin.http classed %s", c.Name)
	}
}

func TestCheck(t *testing.T) {
	ctx := WithGrants(context.Background(), []Capability{"net:api.github.com"})
	if err := Check(ctx, "net:api.github.com"); err != nil {
		t.Error(err)
	}
	err := Check(ctx, "net:example.com")
	if !errors.Is(err, ErrCapability) || !strings.Contains(err.Error(), "net:example.com") {
		t.Errorf("Check = %v, want ErrCapability naming net:example.com", err)
	}
	if err := Check(context.Background(), "clock"); !errors.Is(err, ErrCapability) {
		t.Errorf("Check without grants = %v", err)
	}
}
