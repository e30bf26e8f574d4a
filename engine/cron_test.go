package engine

import (
	"strings"
	"testing"
)

func TestCheckSchedule(t *testing.T) {
	tests := []struct {
		schedule string
		want     string // "" when valid, else a part of the error
	}{
		{"* * * * *", ""},
		{"*/5 * * * *", ""},
		{"0 0 1 1 0", ""},
		{"59 23 31 12 6", ""},
		{"0,15,30,45 8-18 * * 1-5", ""},
		{"0 9-17/2 1-31/10 */3 *", ""},
		{"5/15 * * * *", ""},
		{"0 0 * jan,JUL sun", ""},
		{"0 0 * Jan-Dec Mon-Fri", ""},
		{"  0 0 * * *  ", ""},
		{"@yearly", ""},
		{"@annually", ""},
		{"@monthly", ""},
		{"@weekly", ""},
		{"@daily", ""},
		{"@midnight", ""},
		{"@hourly", ""},
		{"@every 1m30s", ""},
		{"@every 1s", ""},

		{"", "want 5 fields"},
		{"* * * *", "want 5 fields"},
		{"* * * * * *", "want 5 fields"},
		{"60 * * * *", `minute field "60"`},
		{"* 24 * * *", `hour field "24"`},
		{"* * 0 * *", `day-of-month field "0"`},
		{"* * 32 * *", `day-of-month field "32"`},
		{"* * * 13 *", `month field "13"`},
		{"* * * * 7", `day-of-week field "7"`},
		{"* * * foo *", `month field "foo"`},
		{"* * * * sunday", `day-of-week field "sunday"`},
		{"5-1 * * * *", "start after its end"},
		{"*/0 * * * *", "step"},
		{"*/61 * * * *", "step"},
		{"*/x * * * *", "step"},
		{"1,,2 * * * *", "missing value"},
		{"1- * * * *", "missing value"},
		{"-1 * * * *", "missing value"},
		{"+1 * * * *", `"+1" is not a value`},
		{"1-2-3 * * * *", "is not a value"},
		{"@reboot", "unknown descriptor"},
		{"@everyday", "unknown descriptor"},
		{"@every", "unknown descriptor"},
		{"@every soon", "invalid duration"},
		{"@every 500ms", "less than 1s"},
		{"@every -1m", "less than 1s"},
	}
	for _, tt := range tests {
		err := checkSchedule(tt.schedule)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("checkSchedule(%q) = %v, want nil", tt.schedule, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("checkSchedule(%q) = %v, want an error containing %q", tt.schedule, err, tt.want)
		}
	}
}
