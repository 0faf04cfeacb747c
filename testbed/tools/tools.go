//go:build tools

// Package tools pins the commands the build compiles straight from their modules: the distribution
// registry and crictl (used to tear pods down cleanly through the CRI).
package tools

import (
	_ "github.com/distribution/distribution/v3/cmd/registry"
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
