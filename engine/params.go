package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// A param is the compiled form of a node's params: a JSON tree whose
// strings holding {{ expressions }} are compiled. Subtrees without
// expressions are kept as JSON, so resolving them is a copy.
type param struct {
	kind   paramKind
	raw    json.RawMessage // paramStatic
	expr   *program        // paramExpr
	text   []segment       // paramText
	keys   []string        // paramObject, sorted
	fields []*param        // paramObject, by key
	elems  []*param        // paramArray
}

type paramKind uint8

const (
	paramStatic paramKind = iota // JSON without expressions
	paramExpr                    // a string that is exactly "{{ expr }}"
	paramText                    // a string with expressions inside text
	paramObject
	paramArray
)

// A segment of a text template is either text or an expression.
type segment struct {
	text string
	expr *program
}

// compileParams compiles the params of a node. Null or absent params
// resolve to {}.
func (c *compiler) compileParams(raw json.RawMessage) (*param, error) {
	v, err := decodeParams(raw)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return &param{kind: paramStatic, raw: json.RawMessage("{}")}, nil
	}
	return c.compileParam(v)
}

// decodeParams decodes params keeping numbers as written.
func decodeParams(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func (c *compiler) compileParam(v any) (*param, error) {
	switch v := v.(type) {
	case string:
		return c.compileString(v)
	case map[string]any:
		p := &param{kind: paramObject, keys: make([]string, 0, len(v))}
		for k := range v {
			p.keys = append(p.keys, k)
		}
		slices.Sort(p.keys)
		static := true
		for _, k := range p.keys {
			f, err := c.compileParam(v[k])
			if err != nil {
				return nil, err
			}
			static = static && f.kind == paramStatic
			p.fields = append(p.fields, f)
		}
		if static {
			return staticParam(v)
		}
		return p, nil
	case []any:
		p := &param{kind: paramArray}
		static := true
		for _, e := range v {
			f, err := c.compileParam(e)
			if err != nil {
				return nil, err
			}
			static = static && f.kind == paramStatic
			p.elems = append(p.elems, f)
		}
		if static {
			return staticParam(v)
		}
		return p, nil
	}
	return staticParam(v)
}

func staticParam(v any) (*param, error) {
	raw, err := marshalJSON(v)
	if err != nil {
		return nil, err
	}
	return &param{kind: paramStatic, raw: raw}, nil
}

// compileString compiles a string of params: exactly one expression, a
// template, or a literal.
func (c *compiler) compileString(s string) (*param, error) {
	parts, err := splitTemplate(s)
	if err != nil {
		return nil, err
	}
	var text []segment
	for _, part := range parts {
		if !part.isExpr {
			text = append(text, segment{text: part.s})
			continue
		}
		prog, err := c.compile(part.s, nil)
		if err != nil {
			return nil, err
		}
		text = append(text, segment{expr: prog})
	}
	switch {
	case len(text) == 1 && text[0].expr != nil:
		return &param{kind: paramExpr, expr: text[0].expr}, nil
	case slices.ContainsFunc(text, func(s segment) bool { return s.expr != nil }):
		return &param{kind: paramText, text: text}, nil
	}
	return staticParam(s)
}

// A templatePart is text, or the source of an expression.
type templatePart struct {
	s      string
	isExpr bool
}

// splitTemplate splits s into text and the sources of its {{ }}
// expressions, trimmed of spaces. An expression ends at the first "}}"
// outside string literals and braces, so map literals may appear inside. A
// "{{" without its "}}" is an error rather than text, to catch typos; an
// expression such as {{ "{{" }} writes the characters themselves.
func splitTemplate(s string) ([]templatePart, error) {
	var parts []templatePart
	for s != "" {
		start := strings.Index(s, "{{")
		if start < 0 {
			parts = append(parts, templatePart{s: s})
			break
		}
		if start > 0 {
			parts = append(parts, templatePart{s: s[:start]})
		}
		s = s[start+2:]
		end := exprEnd(s)
		if end < 0 {
			return nil, errors.New(`"{{" without a closing "}}"`)
		}
		src := strings.TrimSpace(s[:end])
		if src == "" {
			return nil, errors.New(`empty expression "{{ }}"`)
		}
		parts = append(parts, templatePart{s: src, isExpr: true})
		s = s[end+2:]
	}
	return parts, nil
}

// exprEnd returns the index of the "}}" that closes an expression starting
// at s[0], or -1. It skips quoted strings (with backslash escapes) and
// balanced braces.
func exprEnd(s string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '{':
			depth++
		case c == '}' && depth > 0:
			depth--
		case c == '}' && strings.HasPrefix(s[i:], "}}"):
			return i
		}
	}
	return -1
}

// ResolveParams resolves the params of a node against s: a string that is
// exactly "{{ expr }}" becomes the expression's value, a string with
// expressions inside text becomes that text with each value rendered
// (strings as they are, null as "", other values as compact JSON), and
// anything else stays as it is. Object keys are never resolved. Null or
// absent params resolve to {}. Errors wrap ErrExpression and name the node
// and the expression.
func (p *Plan) ResolveParams(nodeID string, s *Scope) (json.RawMessage, error) {
	i, ok := p.index[nodeID]
	if !ok {
		return nil, fmt.Errorf("no node %q in workflow %q", nodeID, p.def.ID)
	}
	prm := p.params[i]
	if prm.kind == paramStatic {
		return slices.Clone(prm.raw), nil
	}
	r := resolver{vars: p.newActivation(s).vars, limits: p.limits}
	if err := r.write(prm); err != nil {
		if r.failed != nil {
			return nil, fmt.Errorf("%w: node %q: expression %v: %v", ErrExpression, nodeID, r.failed, err)
		}
		return nil, fmt.Errorf("%w: node %q params: %v", ErrExpression, nodeID, err)
	}
	return r.buf.Bytes(), nil
}

// resolver writes resolved params as JSON.
type resolver struct {
	vars   *activation
	limits Limits
	buf    bytes.Buffer
	failed *program // the expression that failed, if one did
}

func (r *resolver) write(p *param) error {
	switch p.kind {
	case paramStatic:
		r.buf.Write(p.raw)
	case paramExpr:
		_, raw, err := r.eval(p.expr)
		if err != nil {
			return err
		}
		r.buf.Write(raw)
	case paramText:
		s, err := r.render(p.text)
		if err != nil {
			return err
		}
		raw, err := marshalJSON(s)
		if err != nil {
			return err
		}
		r.buf.Write(raw)
	case paramObject:
		r.buf.WriteByte('{')
		for i, k := range p.keys {
			if i > 0 {
				r.buf.WriteByte(',')
			}
			key, err := marshalJSON(k)
			if err != nil {
				return err
			}
			r.buf.Write(key)
			r.buf.WriteByte(':')
			if err := r.write(p.fields[i]); err != nil {
				return err
			}
		}
		r.buf.WriteByte('}')
	case paramArray:
		r.buf.WriteByte('[')
		for i, e := range p.elems {
			if i > 0 {
				r.buf.WriteByte(',')
			}
			if err := r.write(e); err != nil {
				return err
			}
		}
		r.buf.WriteByte(']')
	}
	if r.buf.Len() > r.limits.MaxValueBytes {
		return valueTooLarge(r.limits)
	}
	return nil
}

func (r *resolver) eval(e *program) (any, []byte, error) {
	v, raw, err := e.eval(r.vars, r.limits)
	if err != nil {
		r.failed = e
	}
	return v, raw, err
}

// render renders a text template.
func (r *resolver) render(text []segment) (string, error) {
	var b strings.Builder
	for _, seg := range text {
		if seg.expr == nil {
			b.WriteString(seg.text)
		} else {
			v, raw, err := r.eval(seg.expr)
			if err != nil {
				return "", err
			}
			switch v := v.(type) {
			case string:
				b.WriteString(v)
			case nil:
			default:
				b.Write(raw)
			}
		}
		if b.Len() > r.limits.MaxValueBytes {
			return "", valueTooLarge(r.limits)
		}
	}
	return b.String(), nil
}
