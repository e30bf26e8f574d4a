package storagetest

import (
	"context"
	"testing"

	"github.com/nebula-engine/nebula/storage"
)

func settingTests() []test {
	return []test{
		{"DefaultWhenUnset", func(t *testing.T, r storage.Repos) {
			v, err := r.Setting(context.Background(), "max_concurrent_executions", 7)
			if err != nil || v != 7 {
				t.Fatalf("unset setting = %d, %v; want the default 7", v, err)
			}
		}},
		{"PutAndReplace", func(t *testing.T, r storage.Repos) {
			ctx := context.Background()
			for _, want := range []int64{4, 0, -1, 1 << 40} {
				if err := r.PutSetting(ctx, "k", want); err != nil {
					t.Fatal(err)
				}
				if got, err := r.Setting(ctx, "k", 99); err != nil || got != want {
					t.Fatalf("Setting after PutSetting(%d) = %d, %v", want, got, err)
				}
			}
			if got, _ := r.Setting(ctx, "other", 3); got != 3 {
				t.Fatalf("another key = %d, want its default 3", got)
			}
		}},
	}
}
