// Command etcd is the etcd server at the exact version Kubernetes pins in its go.mod, built as its
// own binary because etcd and the Kubernetes components register overlapping global metrics.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
