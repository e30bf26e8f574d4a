package engine

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

func TestDecodeValue(t *testing.T) {
	tests := []struct {
		raw  string
		want any
	}{
		{``, nil},
		{`  `, nil},
		{`null`, nil},
		{`true`, true},
		{`"s"`, "s"},
		{`21`, int64(21)},
		{`-9223372036854775808`, int64(math.MinInt64)},
		{`9223372036854775808`, float64(9223372036854775808)},
		{`1.0`, 1.0},
		{`1e3`, 1000.0},
		{`1e400`, math.Inf(1)},
		{`{"a": [1, 2.5, {"b": null}], "c": "d"}`, map[string]any{"a": []any{int64(1), 2.5, map[string]any{"b": nil}}, "c": "d"}},
		{`[]`, []any{}},
	}
	for _, tt := range tests {
		got, err := DecodeValue(json.RawMessage(tt.raw))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeValue(%s) = %#v, %v; want %#v", tt.raw, got, err, tt.want)
		}
	}
}

func TestDecodeValueErrors(t *testing.T) {
	for _, raw := range []string{`{`, `{"a": }`, `1 2`, `nul`, `"a" x`} {
		if v, err := DecodeValue(json.RawMessage(raw)); err == nil {
			t.Errorf("DecodeValue(%s) = %v, want an error", raw, v)
		}
	}
}
