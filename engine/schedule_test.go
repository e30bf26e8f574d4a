package engine

import (
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		schedule, after, want string
	}{
		{"*/5 * * * *", "2026-11-27T10:03:20Z", "2026-11-27T10:05:00Z"},
		{"*/5 * * * *", "2026-11-27T10:05:00Z", "2026-11-27T10:10:00Z"},
		{"0 9 * * mon-fri", "2026-11-27T10:00:00Z", "2026-11-30T09:00:00Z"}, // Friday after 9 → Monday
		{"30 2 1 * *", "2026-11-27T00:00:00Z", "2026-12-01T02:30:00Z"},
		{"0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 12 13 * 5", "2026-11-27T12:00:00Z", "2026-12-04T12:00:00Z"}, // day 13 OR Friday
		{"@hourly", "2026-11-27T10:59:59Z", "2026-11-27T11:00:00Z"},
		{"@every 1s", "2026-11-27T10:00:00.4Z", "2026-11-27T10:00:01Z"},
		{"@every 1m30s", "2026-11-27T10:00:00Z", "2026-11-27T10:01:30Z"},
	}
	for _, tt := range tests {
		s, err := ParseSchedule(tt.schedule)
		if err != nil {
			t.Fatalf("%s: %v", tt.schedule, err)
		}
		if got := s.Next(at(tt.after)); !got.Equal(at(tt.want)) {
			t.Errorf("%s after %s = %s, want %s", tt.schedule, tt.after, got.Format(time.RFC3339), tt.want)
		}
	}
}
