//go:build tools

// The commands built from the required modules (see build-buildkit.sh).
package tools

import (
	_ "github.com/moby/buildkit/cmd/buildctl"
	_ "github.com/moby/buildkit/cmd/buildkitd"
	_ "github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit"
)
