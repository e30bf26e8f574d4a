package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// checkSchedule checks a cron schedule: five fields (minute, hour, day of
// month, month, day of week) made of *, numbers, names (JAN-DEC, SUN-SAT),
// lists, ranges and steps; or a descriptor: @yearly, @annually, @monthly,
// @weekly, @daily, @midnight, @hourly or "@every <duration>".
func checkSchedule(s string) error {
	_, err := ParseSchedule(s)
	return err
}

// Schedule is a parsed cron schedule. Times are UTC.
type Schedule struct {
	every                        time.Duration // @every; the fields are unused then
	minute, hour, dom, month     uint64        // bit n set: value n matches
	dow                          uint64
	domRestricted, dowRestricted bool
}

var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// ParseSchedule parses a schedule (see checkSchedule for the forms).
func ParseSchedule(s string) (*Schedule, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "@") {
		if fields, ok := descriptors[s]; ok {
			s = fields
		} else {
			return parseEvery(s)
		}
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return nil, fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(fields))
	}
	specs := [5]cronField{
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day-of-month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
		{name: "day-of-week", min: 0, max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
	}
	var bits [5]uint64
	for i, f := range fields {
		b, err := specs[i].parse(f)
		if err != nil {
			return nil, fmt.Errorf("%s field %q: %w", specs[i].name, f, err)
		}
		bits[i] = b
	}
	return &Schedule{
		minute: bits[0], hour: bits[1], dom: bits[2], month: bits[3], dow: bits[4],
		domRestricted: fields[2] != "*", dowRestricted: fields[4] != "*",
	}, nil
}

func parseEvery(s string) (*Schedule, error) {
	rest, ok := strings.CutPrefix(s, "@every")
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return nil, fmt.Errorf("unknown descriptor %q", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(rest))
	if err != nil {
		return nil, fmt.Errorf("@every: invalid duration %q", strings.TrimSpace(rest))
	}
	if d < time.Second {
		return nil, fmt.Errorf("@every: duration %s is less than 1s", d)
	}
	return &Schedule{every: d}, nil
}

// Next returns the first tick strictly after t. Ticks of "@every d" are the
// multiples of d since the Unix epoch, so every node computes the same
// ones; a schedule that never matches returns the zero time.
func (c *Schedule) Next(t time.Time) time.Time {
	t = t.UTC()
	if c.every > 0 {
		return t.Truncate(c.every).Add(c.every)
	}
	t = t.Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		switch {
		case c.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case c.hour&(1<<uint(t.Hour())) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case c.minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

// dayMatches applies cron's rule: when both day fields are restricted, a
// day matching either one matches.
func (c *Schedule) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<uint(t.Day())) != 0
	dow := c.dow&(1<<uint(t.Weekday())) != 0
	if c.domRestricted && c.dowRestricted {
		return dom || dow
	}
	return dom && dow
}

// cronField describes one field of a cron schedule. names, when set, are
// the names of the values from min on.
type cronField struct {
	name     string
	min, max int
	names    []string
}

// parse parses one field: a comma-separated list of items, each *, a value
// or a range lo-hi, optionally followed by /step.
func (f cronField) parse(s string) (uint64, error) {
	var bits uint64
	for item := range strings.SplitSeq(s, ",") {
		b, err := f.parseItem(item)
		if err != nil {
			return 0, err
		}
		bits |= b
	}
	return bits, nil
}

func (f cronField) parseItem(item string) (uint64, error) {
	rng, stepStr, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepStr)
		if err != nil || n < 1 || n > f.max-f.min+1 {
			return 0, fmt.Errorf("step %q is not a number in 1..%d", stepStr, f.max-f.min+1)
		}
		step = n
	}
	lo, hi := f.min, f.max
	if rng != "*" {
		loStr, hiStr, isRange := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(loStr); err != nil {
			return 0, err
		}
		hi = lo
		if isRange {
			if hi, err = f.value(hiStr); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("range %s has its start after its end", rng)
			}
		} else if hasStep {
			hi = f.max // "5/15" means from 5 on, every 15
		}
	}
	var bits uint64
	for v := lo; v <= hi; v += step {
		bits |= 1 << uint(v)
	}
	return bits, nil
}

// value parses a number or a name within the bounds of the field.
func (f cronField) value(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing value")
	}
	for i, name := range f.names {
		if strings.EqualFold(s, name) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a value in %d..%d", s, f.min, f.max)
	}
	return n, nil
}
