package web

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// FieldNameError is a JSON object key that names no field of the value it
// is decoded into, compared exactly: encoding/json matches keys to fields
// ignoring case, so that {"TITLE": ...} would fill title, and {"title": "a",
// "Title": "b"} would keep the last of two.
type FieldNameError struct {
	// Path is where the key is, such as "TITLE" or "links[0].URL".
	Path string
	// Want is the field's exact name when the key differs from one only in
	// case; empty otherwise.
	Want string
}

func (e *FieldNameError) Error() string {
	if e.Want != "" {
		return fmt.Sprintf("unknown field %q: field names are case-sensitive (did you mean %q?)", e.Path, e.Want)
	}
	return fmt.Sprintf("unknown field %q", e.Path)
}

// CheckFieldNames reports the first key of the JSON document data (in
// document order) that names no field of v's type exactly, as a
// *FieldNameError. Run it after json.Unmarshal into v has succeeded: it
// decodes data again, generically, and walks it alongside the type. Values
// of types with their own UnmarshalJSON or UnmarshalText, of interface types
// and of maps with non-struct values are not looked into.
func CheckFieldNames(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkFields(dec, reflect.TypeOf(v), "")
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walkFields reads one JSON value from dec, checking the keys of its objects
// against t.
func walkFields(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	opaque := t == nil || t.Kind() == reflect.Interface ||
		reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
	switch d {
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case opaque:
		case t.Kind() == reflect.Struct:
			fields = jsonFields(t)
		case t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			sub := path + "." + key
			if path == "" {
				sub = key
			}
			var next reflect.Type
			switch {
			case fields != nil:
				ft, ok := fields[key]
				if !ok {
					return &FieldNameError{Path: sub, Want: foldMatch(fields, key)}
				}
				next = ft
			case elem != nil:
				next = elem
			}
			if err := walkFields(dec, next, sub); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if !opaque && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkFields(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// jsonFields maps the JSON names of struct t's fields (as encoding/json
// names them, embedded structs' fields included) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// foldMatch is the field name that key matches ignoring case, or "".
func foldMatch(fields map[string]reflect.Type, key string) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.EqualFold(name, key) {
			return name
		}
	}
	return ""
}
