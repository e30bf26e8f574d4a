package engine

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"google.golang.org/protobuf/types/known/structpb"
)

// Scope is what expressions see while an execution runs. Values are
// JSON-shaped Go values: map[string]any, []any, string, bool, nil, int64
// for integral numbers and float64 for others, as DecodeValue makes them.
type Scope struct {
	Input any
	// Nodes holds the state of nodes by id; a node absent from the map is
	// pending and has no output.
	Nodes       map[string]NodeView
	ExecutionID string
	WorkflowID  string
	// Meter, if set, is charged with the CEL cost of every evaluation
	// made on this scope.
	Meter *Meter
}

// Meter adds up the work of evaluations: Cost is in CEL's cost units,
// which count operations, never time, so replicas count the same.
type Meter struct {
	Cost uint64
}

// NodeView is the state of one node as the decider and expressions see it.
type NodeView struct {
	Status NodeStatus
	Output any
	Error  string
}

// DecodeValue decodes JSON into a scope value. Numbers written without a
// fraction or exponent that fit in an int64 become int64, others float64
// (out-of-range ones ±Inf, so that every valid JSON document decodes). A
// nil or empty raw decodes to nil.
func DecodeValue(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return fromNumbers(v), nil
}

// fromNumbers replaces, in place, the json.Numbers of a freshly decoded
// value.
func fromNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		return fromNumber(v)
	case map[string]any:
		for k, e := range v {
			v[k] = fromNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = fromNumbers(e)
		}
	}
	return v
}

func fromNumber(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	// ParseFloat rounds to ±Inf on overflow, which is what we want.
	f, _ := n.Float64()
	return f
}

// celAdapter turns scope values into CEL values. Objects and arrays are
// wrapped rather than copied; their elements are converted as they are
// read, by this adapter again.
type celAdapter struct{}

func (celAdapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case nil:
		return types.NullValue
	case bool:
		return types.Bool(v)
	case string:
		return types.String(v)
	case int64:
		return types.Int(v)
	case float64:
		return types.Double(v)
	case json.Number:
		return celAdapter{}.NativeToValue(fromNumber(v))
	case map[string]any:
		return orderedMap{types.NewStringInterfaceMap(celAdapter{}, v)}
	case []any:
		return types.NewDynamicList(celAdapter{}, v)
	case ref.Val:
		return v
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// orderedMap is a CEL map that iterates over its keys in sorted order.
// Comprehensions over a map (m.map(k, ...), m.exists(k, ...)) visit keys in
// iteration order, and cel-go iterates over Go maps in Go's random order;
// the engine runs expressions inside a replicated state machine, where
// every replica must compute the same result.
type orderedMap struct {
	traits.Mapper
}

// Iterator returns an iterator over the keys of m in sorted order.
func (m orderedMap) Iterator() traits.Iterator {
	var keys []ref.Val
	for it := m.Mapper.Iterator(); it.HasNext() == types.True; {
		keys = append(keys, it.Next())
	}
	slices.SortFunc(keys, compareKeys)
	return types.NewRefValList(types.DefaultTypeAdapter, keys).Iterator()
}

// compareKeys orders map keys: bools, then ints, uints and strings, each
// in their natural order.
func compareKeys(a, b ref.Val) int {
	if ra, rb := keyRank(a), keyRank(b); ra != rb {
		return ra - rb
	}
	if c, ok := a.(traits.Comparer); ok {
		if r, ok := c.Compare(b).(types.Int); ok {
			return int(r)
		}
	}
	return 0
}

func keyRank(k ref.Val) int {
	switch k.(type) {
	case types.Bool:
		return 0
	case types.Int:
		return 1
	case types.Uint:
		return 2
	case types.String:
		return 3
	}
	return 4
}

// errTooLarge is returned by jsonValue when the budget runs out.
var errTooLarge = errors.New("value too large")

// jsonValue turns a CEL value into a JSON-shaped Go value. Timestamps,
// durations and bytes take their protobuf JSON forms (strings).
//
// *budget is decremented by a lower bound of the size of the JSON written
// so far, and the conversion stops with errTooLarge once it is negative: a
// CEL value can reference one big list many times, and would otherwise be
// expanded in full before its size could be checked.
func jsonValue(v ref.Val, budget *int) (any, error) {
	if *budget < 0 {
		return nil, errTooLarge
	}
	switch v := v.(type) {
	case types.Null:
		*budget -= 4
		return nil, nil
	case types.Bool:
		*budget -= 4
		return bool(v), nil
	case types.Int:
		*budget--
		return int64(v), nil
	case types.Uint:
		*budget--
		if v <= math.MaxInt64 {
			return int64(v), nil
		}
		return float64(v), nil
	case types.Double:
		*budget--
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v has no JSON form", f)
		}
		return f, nil
	case types.String:
		*budget -= len(v) + 2
		return string(v), nil
	case types.Bytes:
		*budget -= len(v) + 2
		return base64.StdEncoding.EncodeToString(v), nil
	case *types.Err:
		return nil, v
	case *types.Unknown:
		return nil, fmt.Errorf("unknown value %v", v)
	case traits.Lister:
		n, ok := v.Size().(types.Int)
		if !ok {
			return nil, errors.New("list without a size")
		}
		*budget -= 1 + int(n)
		out := make([]any, 0, min(int(n), max(*budget, 0)))
		for i := types.Int(0); i < n; i++ {
			e, err := jsonValue(v.Get(i), budget)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case traits.Mapper:
		*budget--
		out := make(map[string]any)
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v is not a string, so the map has no JSON form", k)
			}
			*budget -= len(ks) + 4
			e, err := jsonValue(v.Get(k), budget)
			if err != nil {
				return nil, err
			}
			out[string(ks)] = e
		}
		return out, nil
	}
	native, err := v.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, fmt.Errorf("a value of type %s has no JSON form", v.Type().TypeName())
	}
	*budget -= 2
	return native.(*structpb.Value).AsInterface(), nil
}

// jsonTypeName names the JSON type of a scope value.
func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a bool"
	case string:
		return "a string"
	case int64, float64:
		return "a number"
	case []any:
		return "an array"
	}
	return "an object"
}
