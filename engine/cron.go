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
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "@") {
		return checkDescriptor(s)
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(fields))
	}
	specs := [5]cronField{
		{name: "minute", min: 0, max: 59},
		{name: "hour", min: 0, max: 23},
		{name: "day-of-month", min: 1, max: 31},
		{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
		{name: "day-of-week", min: 0, max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
	}
	for i, f := range fields {
		if err := specs[i].check(f); err != nil {
			return fmt.Errorf("%s field %q: %w", specs[i].name, f, err)
		}
	}
	return nil
}

func checkDescriptor(s string) error {
	switch s {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return nil
	}
	rest, ok := strings.CutPrefix(s, "@every")
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return fmt.Errorf("unknown descriptor %q", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(rest))
	if err != nil {
		return fmt.Errorf("@every: invalid duration %q", strings.TrimSpace(rest))
	}
	if d < time.Second {
		return fmt.Errorf("@every: duration %s is less than 1s", d)
	}
	return nil
}

// cronField describes one field of a cron schedule. names, when set, are
// the names of the values from min on.
type cronField struct {
	name     string
	min, max int
	names    []string
}

// check checks one field: a comma-separated list of items, each *, a
// value or a range lo-hi, optionally followed by /step.
func (f cronField) check(s string) error {
	for item := range strings.SplitSeq(s, ",") {
		if err := f.checkItem(item); err != nil {
			return err
		}
	}
	return nil
}

func (f cronField) checkItem(item string) error {
	rng, step, hasStep := strings.Cut(item, "/")
	if hasStep {
		n, err := strconv.Atoi(step)
		if err != nil || n < 1 || n > f.max-f.min+1 {
			return fmt.Errorf("step %q is not a number in 1..%d", step, f.max-f.min+1)
		}
	}
	if rng == "*" {
		return nil
	}
	loStr, hiStr, isRange := strings.Cut(rng, "-")
	lo, err := f.value(loStr)
	if err != nil {
		return err
	}
	if !isRange {
		return nil
	}
	hi, err := f.value(hiStr)
	if err != nil {
		return err
	}
	if lo > hi {
		return fmt.Errorf("range %s has its start after its end", rng)
	}
	return nil
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
