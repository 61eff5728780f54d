package config

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"gopkg.in/yaml.v3"
)

// yamlParser reads a config file in etcd's YAML form: keys are flag names,
// and the TLS keys may sit under client-transport-security as in etcd's
// files. A list is joined with commas; an integer for a duration flag is
// nanoseconds, as etcd's files write durations; an empty value is skipped.
func yamlParser(fs *flag.FlagSet) ff.ConfigFileParser {
	return func(r io.Reader, set func(name, value string) error) error {
		var doc map[string]any
		if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
			if err == io.EOF {
				return nil // an empty file
			}
			return fmt.Errorf("config file: %w", err)
		}
		if nested, ok := doc["client-transport-security"]; ok {
			section, ok := nested.(map[string]any)
			if !ok && nested != nil {
				return fmt.Errorf("config file: client-transport-security must be a mapping")
			}
			delete(doc, "client-transport-security")
			for k, v := range section {
				if _, dup := doc[k]; dup {
					return fmt.Errorf("config file: %s is set both at the top level and under client-transport-security", k)
				}
				doc[k] = v
			}
		}
		for key, raw := range doc {
			value, err := yamlValue(fs, key, raw)
			if err != nil {
				return fmt.Errorf("config file: %s: %w", key, err)
			}
			if value == nil {
				continue
			}
			if err := set(key, *value); err != nil {
				return fmt.Errorf("config file: %w", err)
			}
		}
		return nil
	}
}

func yamlValue(fs *flag.FlagSet, key string, raw any) (*string, error) {
	var s string
	switch v := raw.(type) {
	case nil:
		return nil, nil
	case string:
		s = v
	case bool:
		s = strconv.FormatBool(v)
	case int:
		s = strconv.Itoa(v)
		if f := fs.Lookup(key); f != nil {
			if _, isDuration := f.Value.(flag.Getter).Get().(time.Duration); isDuration {
				s += "ns"
			}
		}
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			p, err := yamlValue(fs, key, item)
			if err != nil || p == nil {
				return nil, fmt.Errorf("a list may hold only plain values")
			}
			parts[i] = *p
		}
		s = strings.Join(parts, ",")
	default:
		return nil, fmt.Errorf("want a plain value or a list, got a %T", raw)
	}
	return &s, nil
}
