// Package wasmbin reads and writes the parts of the WebAssembly binary format
// the sandbox needs: the section framing, LEB128 numbers and the import,
// memory and export sections. It deliberately knows nothing about
// instructions; the fuel package decodes those.
package wasmbin

import (
	"bytes"
	"errors"
	"fmt"
)

// Section ids, in the order the spec requires them (custom sections aside).
const (
	SectionCustom    byte = 0
	SectionType      byte = 1
	SectionImport    byte = 2
	SectionFunction  byte = 3
	SectionTable     byte = 4
	SectionMemory    byte = 5
	SectionGlobal    byte = 6
	SectionExport    byte = 7
	SectionStart     byte = 8
	SectionElement   byte = 9
	SectionCode      byte = 10
	SectionData      byte = 11
	SectionDataCount byte = 12
	SectionTag       byte = 13
)

// External kinds of imports and exports.
const (
	KindFunc   byte = 0
	KindTable  byte = 1
	KindMemory byte = 2
	KindGlobal byte = 3
	KindTag    byte = 4
)

// header is the magic number followed by binary format version 1.
var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// ErrUnexpectedEOF reports a truncated module.
var ErrUnexpectedEOF = errors.New("wasm: unexpected end of module")

// Section is one section of a module: its id and its content, without the
// id byte and size prefix.
type Section struct {
	ID      byte
	Content []byte
}

// order gives a section's position in the required order; custom sections,
// which may appear anywhere, get -1.
func order(id byte) int {
	switch id {
	case SectionCustom:
		return -1
	case SectionTag: // the exception-handling proposal puts it between memory and global
		return int(SectionMemory) + 1
	case SectionDataCount: // comes right before code
		return int(SectionElement) + 1
	}
	o := int(id)
	if id >= SectionGlobal {
		o++ // room for the tag section
	}
	if id >= SectionCode {
		o++ // room for the data count section
	}
	return o
}

// Before reports whether a section with id a must come before one with id b.
// Custom sections are never before anything.
func Before(a, b byte) bool {
	oa, ob := order(a), order(b)
	return oa >= 0 && ob >= 0 && oa < ob
}

// Parse splits a module into its sections, checking the header and the
// framing only.
func Parse(module []byte) ([]Section, error) {
	if !bytes.HasPrefix(module, header) {
		return nil, errors.New("wasm: not a WebAssembly binary module (bad magic number or version)")
	}
	r := NewReader(module[len(header):])
	var sections []Section
	last := -1
	for r.Len() > 0 {
		id, err := r.Byte()
		if err != nil {
			return nil, err
		}
		if id > SectionTag {
			return nil, fmt.Errorf("wasm: unknown section id %d", id)
		}
		content, err := r.Bytes()
		if err != nil {
			return nil, fmt.Errorf("wasm: section %d: %w", id, err)
		}
		if o := order(id); o >= 0 {
			if o <= last {
				return nil, fmt.Errorf("wasm: section %d out of order or repeated", id)
			}
			last = o
		}
		sections = append(sections, Section{ID: id, Content: content})
	}
	return sections, nil
}

// Encode writes a module back from its sections.
func Encode(sections []Section) []byte {
	size := len(header)
	for _, s := range sections {
		size += 1 + 5 + len(s.Content)
	}
	out := make([]byte, 0, size)
	out = append(out, header...)
	for _, s := range sections {
		out = append(out, s.ID)
		out = AppendU32(out, uint32(len(s.Content)))
		out = append(out, s.Content...)
	}
	return out
}

// Import is one entry of the import section. TypeIndex is meaningful for
// function imports only, Limits for memory imports only.
type Import struct {
	Module, Name string
	Kind         byte
	TypeIndex    uint32
	Limits       Limits
}

// Limits are a memory's page counts; Max is nil when the module sets none.
type Limits struct {
	Min uint32
	Max *uint32
}

// Imports decodes the import section content.
func Imports(content []byte) ([]Import, error) {
	r := NewReader(content)
	n, err := r.U32()
	if err != nil {
		return nil, err
	}
	imports := make([]Import, 0, min(n, 1024))
	for range n {
		var im Import
		if im.Module, err = r.Name(); err != nil {
			return nil, err
		}
		if im.Name, err = r.Name(); err != nil {
			return nil, err
		}
		if im.Kind, err = r.Byte(); err != nil {
			return nil, err
		}
		switch im.Kind {
		case KindFunc:
			im.TypeIndex, err = r.U32()
		case KindTag:
			if _, err = r.Byte(); err == nil { // attribute
				im.TypeIndex, err = r.U32()
			}
		case KindTable:
			if _, err = r.Byte(); err == nil { // element reference type
				_, _, err = r.Limits()
			}
		case KindMemory:
			im.Limits.Min, im.Limits.Max, err = r.Limits()
		case KindGlobal:
			_, err = r.Skip(2) // value type and mutability
		default:
			err = fmt.Errorf("wasm: import %s.%s: unknown kind %d", im.Module, im.Name, im.Kind)
		}
		if err != nil {
			return nil, err
		}
		imports = append(imports, im)
	}
	return imports, nil
}

// Memory returns the limits of the module's memory, imported or defined,
// and false when it has none.
func Memory(sections []Section) (Limits, bool, error) {
	for _, s := range sections {
		switch s.ID {
		case SectionImport:
			imports, err := Imports(s.Content)
			if err != nil {
				return Limits{}, false, err
			}
			for _, im := range imports {
				if im.Kind == KindMemory {
					return im.Limits, true, nil
				}
			}
		case SectionMemory:
			r := NewReader(s.Content)
			n, err := r.U32()
			if err != nil || n == 0 {
				return Limits{}, false, err
			}
			var l Limits
			l.Min, l.Max, err = r.Limits()
			return l, err == nil, err
		}
	}
	return Limits{}, false, nil
}
