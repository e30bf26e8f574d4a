// Package deploy holds the configuration presets Nebula ships: the files
// in this folder, built into the binary so that `nebula desktop` needs no
// file at all.
package deploy

import (
	"embed"
	"fmt"
)

//go:embed config.*.toml
var presets embed.FS

// Preset returns the preset file of a profile ("desktop", "selfhost",
// "cloud").
func Preset(profile string) ([]byte, error) {
	b, err := presets.ReadFile("config." + profile + ".toml")
	if err != nil {
		return nil, fmt.Errorf("no preset for profile %q", profile)
	}
	return b, nil
}
