//go:build tools

// The command built from the required module (see build-buildkit.sh).
package tools

import _ "github.com/opencontainers/runc"
