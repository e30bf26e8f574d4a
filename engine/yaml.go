package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// yamlToJSON converts a YAML document to a JSON-shaped value.
//
// It reads YAML 1.2 scalars (go.yaml.in/yaml/v3) rather than YAML 1.1 ones
// (the yaml.v2 under sigs.k8s.io/yaml.YAMLToJSON): in YAML 1.1 an unquoted
// n, y, no, yes, on or off is a bool, so the key "n" of the contract's own
// example would silently become "false". Timestamps are kept as the text
// that was written. A second document in the stream is refused, like
// trailing data after a JSON document.
func yamlToJSON(data []byte) (any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil, errors.New("empty document")
	} else if err != nil {
		return nil, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err != io.EOF {
		return nil, errors.New("unexpected data after the first YAML document")
	}
	keepTimestampsAsText(&doc)
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, err
	}
	return jsonFromYAML(v)
}

// keepTimestampsAsText retags plain scalars that YAML would decode as
// time.Time (2024-01-31, 2024-01-31T10:00:00Z) as strings.
func keepTimestampsAsText(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Style&yaml.TaggedStyle == 0 && n.ShortTag() == "!!timestamp" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		keepTimestampsAsText(c)
	}
}

// jsonFromYAML turns a decoded YAML value into a JSON-shaped one: mapping
// keys become strings, integers int64 (or uint64 past its range).
func jsonFromYAML(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string, int64, uint64:
		return v, nil
	case int:
		return int64(v), nil
	case time.Time: // an explicit !!timestamp
		return v.Format(time.RFC3339Nano), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", v)
		}
		return v, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			var err error
			if out[i], err = jsonFromYAML(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			var err error
			if out[k], err = jsonFromYAML(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			key, err := yamlKey(k)
			if err != nil {
				return nil, err
			}
			if _, dup := out[key]; dup {
				return nil, fmt.Errorf("duplicate key %q", key)
			}
			if out[key], err = jsonFromYAML(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("a YAML value of type %T has no JSON form", v)
}

// yamlKey turns a scalar mapping key into a string.
func yamlKey(k any) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case bool:
		return strconv.FormatBool(k), nil
	case int:
		return strconv.Itoa(k), nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case uint64:
		return strconv.FormatUint(k, 10), nil
	case float64:
		return strconv.FormatFloat(k, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("mapping key %v cannot be a JSON object key", k)
}
