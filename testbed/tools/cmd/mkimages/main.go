// Command mkimages assembles the test cluster's container images from locally built static binaries,
// with no registry and no container engine, and pushes them to a registry.
//
//	mkimages build -bin DIR -out DIR   write OUT/layout (one OCI layout with every image),
//	                                   OUT/archives/<name>.tar (one OCI archive per image, for
//	                                   `ctr images import`) and OUT/images.txt (reference and digest)
//	mkimages image -ref REFERENCE -file SRC:DEST:MODE... [-entrypoint ARG]... [-cmd ARG]...
//	               [-label KEY=VALUE]... [-user UID:GID] -out DIR
//	                                   assemble one single-layer image from the given files (SRC a
//	                                   host path, DEST its absolute path in the image, MODE octal)
//	                                   and replace DIR with the same three outputs as build (used
//	                                   for the operator image, whose files come from our Rust build)
//	mkimages push -layout DIR -registry HOST:PORT
//	                                   push every image of the layout to HOST:PORT (plain HTTP),
//	                                   keeping its repository path and tag
//
// Output is deterministic: the same binaries give the same digests (fixed timestamps, sorted
// entries, root ownership, gzip without names or times).
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the timestamp of every file and image: fixed, so digests only depend on content.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// file is one file of an image: content from a built binary, a host file or inline.
type file struct {
	path   string // absolute path in the image
	binary string // name of a binary in -bin, or ""
	source string // a host file (mkimages image), or ""
	inline string // content when binary and source are both ""
	mode   int64
}

// image is one image the test cluster uses.
type image struct {
	reference  string
	files      []file
	entrypoint []string
	command    []string
	env        []string
	user       string
	ports      []string
	volumes    []string
	labels     map[string]string
}

const registryConfig = `version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
`

// images lists every image, under the reference a user would pull it by.
var images = []image{
	{
		reference:  "registry.k8s.io/pause:3.10",
		files:      []file{{path: "/pause", binary: "pause", mode: 0o755}},
		entrypoint: []string{"/pause"},
		user:       "65535:65535",
	},
	{
		reference:  "docker.io/jackaldev/demo-web:1.0.0",
		files:      []file{{path: "/demo-web", binary: "demo-web", mode: 0o755}},
		entrypoint: []string{"/demo-web"},
		command:    []string{"serve"},
		user:       "65532:65532",
		ports:      []string{"8080/tcp"},
	},
	{
		reference: "docker.io/library/registry:3.1.2",
		files: []file{
			{path: "/bin/registry", binary: "registry", mode: 0o755},
			{path: "/etc/distribution/config.yml", inline: registryConfig, mode: 0o644},
		},
		entrypoint: []string{"/bin/registry"},
		command:    []string{"serve", "/etc/distribution/config.yml"},
		user:       "65532:65532",
		ports:      []string{"5000/tcp"},
		volumes:    []string{"/var/lib/registry"},
	},
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mkimages build -bin DIR -out DIR | mkimages image -ref REF -file SRC:DEST:MODE... -out DIR | mkimages push -layout DIR -registry HOST:PORT")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		flags := flag.NewFlagSet("build", flag.ExitOnError)
		bin := flags.String("bin", "", "directory holding the built binaries")
		out := flags.String("out", "", "output directory")
		_ = flags.Parse(os.Args[2:])
		err = build(*bin, *out)
	case "image":
		err = singleImage(os.Args[2:])
	case "push":
		flags := flag.NewFlagSet("push", flag.ExitOnError)
		layoutDir := flags.String("layout", "", "OCI layout written by build")
		registry := flags.String("registry", "", "registry HOST:PORT (plain HTTP)")
		_ = flags.Parse(os.Args[2:])
		err = push(*layoutDir, *registry)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func build(bin, out string) error {
	if bin == "" || out == "" {
		return fmt.Errorf("build needs -bin and -out")
	}
	return writeImages(images, bin, out)
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// singleImage is `mkimages image`: one image from host files, described entirely by flags, written
// to a fresh directory that then replaces -out (so a rerun never appends to an old layout).
func singleImage(args []string) error {
	flags := flag.NewFlagSet("image", flag.ExitOnError)
	var files, entrypoint, command, labels repeated
	reference := flags.String("ref", "", "the image reference, e.g. docker.io/jackaldev/jackal-operator:0.1.0")
	user := flags.String("user", "", "UID:GID the image runs as")
	out := flags.String("out", "", "output directory (replaced)")
	flags.Var(&files, "file", "SRC:DEST:MODE, a host file, its absolute path in the image and its octal mode (repeatable)")
	flags.Var(&entrypoint, "entrypoint", "one entrypoint argument (repeatable)")
	flags.Var(&command, "cmd", "one default command argument (repeatable)")
	flags.Var(&labels, "label", "KEY=VALUE, an image label (repeatable)")
	_ = flags.Parse(args)
	if *reference == "" || *out == "" || len(files) == 0 {
		return fmt.Errorf("image needs -ref, -out and at least one -file")
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("image: unexpected argument %q", flags.Arg(0))
	}
	if _, err := name.ParseReference(*reference, name.StrictValidation); err != nil {
		return fmt.Errorf("image: -ref %q: %w", *reference, err)
	}
	spec := image{reference: *reference, entrypoint: entrypoint, command: command, user: *user, labels: map[string]string{}}
	seen := map[string]bool{}
	for _, entry := range files {
		parts := strings.Split(entry, ":")
		if len(parts) != 3 || !strings.HasPrefix(parts[1], "/") {
			return fmt.Errorf("image: -file %q is not SRC:/DEST:MODE", entry)
		}
		mode, err := strconv.ParseInt(parts[2], 8, 64)
		if err != nil || mode < 0 || mode > 0o7777 {
			return fmt.Errorf("image: -file %q has no octal mode", entry)
		}
		if seen[parts[1]] {
			return fmt.Errorf("image: %s is given twice", parts[1])
		}
		seen[parts[1]] = true
		spec.files = append(spec.files, file{path: parts[1], source: parts[0], mode: mode})
	}
	for _, label := range labels {
		key, value, ok := strings.Cut(label, "=")
		if !ok || key == "" {
			return fmt.Errorf("image: -label %q is not KEY=VALUE", label)
		}
		spec.labels[key] = value
	}
	target := filepath.Clean(*out)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if err := writeImages([]image{spec}, "", staging); err != nil {
		return err
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(target); err != nil {
		return err
	}
	return os.Rename(staging, target)
}

// writeImages writes OUT/layout (every image), OUT/archives/<name>.tar (one OCI archive per
// image) and OUT/images.txt (reference, digest, archive name per line).
func writeImages(specs []image, bin, out string) error {
	combined, err := layout.Write(filepath.Join(out, "layout"), empty.Index)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "archives"), 0o755); err != nil {
		return err
	}
	var listing strings.Builder
	for _, spec := range specs {
		img, err := assemble(spec, bin)
		if err != nil {
			return fmt.Errorf("image %s: %w", spec.reference, err)
		}
		annotations := map[string]string{
			"org.opencontainers.image.ref.name": spec.reference,
			"io.containerd.image.name":          spec.reference,
		}
		if err := combined.AppendImage(img, layout.WithAnnotations(annotations)); err != nil {
			return err
		}
		if err := writeArchive(img, spec.reference, filepath.Join(out, "archives", archiveName(spec.reference))); err != nil {
			return fmt.Errorf("archive of %s: %w", spec.reference, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(&listing, "%s %s %s\n", spec.reference, digest, archiveName(spec.reference))
	}
	return os.WriteFile(filepath.Join(out, "images.txt"), []byte(listing.String()), 0o644)
}

// archiveName turns docker.io/jackaldev/demo-web:1.0.0 into jackaldev-demo-web-1.0.0.tar.
func archiveName(reference string) string {
	ref, _ := name.ParseReference(reference)
	repository := ref.Context().RepositoryStr()
	return strings.NewReplacer("/", "-", ":", "-").Replace(repository+":"+ref.Identifier()) + ".tar"
}

func assemble(spec image, bin string) (v1.Image, error) {
	layerTar, err := layerBytes(spec.files, bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer),
	)
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "mkimages " + spec.reference},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, err
	}
	config, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	config = config.DeepCopy()
	config.Created = v1.Time{Time: epoch}
	config.Architecture = "amd64"
	config.OS = "linux"
	config.Config.Entrypoint = spec.entrypoint
	config.Config.Cmd = spec.command
	config.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.env...)
	config.Config.User = spec.user
	config.Config.WorkingDir = "/"
	if len(spec.labels) > 0 {
		config.Config.Labels = spec.labels
	}
	if len(spec.ports) > 0 {
		config.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range spec.ports {
			config.Config.ExposedPorts[port] = struct{}{}
		}
	}
	if len(spec.volumes) > 0 {
		config.Config.Volumes = map[string]struct{}{}
		for _, volume := range spec.volumes {
			config.Config.Volumes[volume] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, config)
}

// layerBytes writes a deterministic tar: parent directories first, entries sorted, root-owned,
// fixed timestamps.
func layerBytes(files []file, bin string) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	var buffer bytes.Buffer
	writer := tar.NewWriter(&buffer)
	seen := map[string]bool{}
	for _, f := range files {
		relative := strings.TrimPrefix(f.path, "/")
		var parents []string
		for dir := path.Dir(relative); dir != "." && !seen[dir]; dir = path.Dir(dir) {
			parents = append([]string{dir}, parents...)
			seen[dir] = true
		}
		for _, dir := range parents {
			header := &tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}
			if err := writer.WriteHeader(header); err != nil {
				return nil, err
			}
		}
		content := []byte(f.inline)
		var err error
		switch {
		case f.binary != "":
			content, err = os.ReadFile(filepath.Join(bin, f.binary))
		case f.source != "":
			content, err = os.ReadFile(f.source)
		}
		if err != nil {
			return nil, err
		}
		header := &tar.Header{Typeflag: tar.TypeReg, Name: relative, Mode: f.mode, Size: int64(len(content)), ModTime: epoch, Format: tar.FormatPAX}
		if err := writer.WriteHeader(header); err != nil {
			return nil, err
		}
		if _, err := writer.Write(content); err != nil {
			return nil, err
		}
	}
	if err := writer.Close(); err != nil {
		return nil, err
	}
	return buffer.Bytes(), nil
}

// writeArchive writes one image as an OCI archive (a tarred OCI layout) that ctr can import.
func writeArchive(img v1.Image, reference, target string) error {
	staging, err := os.MkdirTemp(filepath.Dir(target), ".archive-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	single, err := layout.Write(staging, empty.Index)
	if err != nil {
		return err
	}
	annotations := map[string]string{"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": reference}
	if err := single.AppendImage(img, layout.WithAnnotations(annotations)); err != nil {
		return err
	}
	var entries []string
	err = filepath.Walk(staging, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != staging {
			entries = append(entries, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(entries)
	output, err := os.Create(target)
	if err != nil {
		return err
	}
	defer output.Close()
	writer := tar.NewWriter(output)
	for _, entry := range entries {
		info, err := os.Stat(entry)
		if err != nil {
			return err
		}
		relative, _ := filepath.Rel(staging, entry)
		header := &tar.Header{Name: filepath.ToSlash(relative), ModTime: epoch, Mode: 0o644, Format: tar.FormatPAX}
		if info.IsDir() {
			header.Typeflag, header.Name, header.Mode = tar.TypeDir, header.Name+"/", 0o755
			if err := writer.WriteHeader(header); err != nil {
				return err
			}
			continue
		}
		header.Typeflag, header.Size = tar.TypeReg, info.Size()
		if err := writer.WriteHeader(header); err != nil {
			return err
		}
		content, err := os.Open(entry)
		if err != nil {
			return err
		}
		_, err = io.Copy(writer, content)
		content.Close()
		if err != nil {
			return err
		}
	}
	return writer.Close()
}

func push(layoutDir, registry string) error {
	if layoutDir == "" || registry == "" {
		return fmt.Errorf("push needs -layout and -registry")
	}
	path, err := layout.FromPath(layoutDir)
	if err != nil {
		return err
	}
	index, err := path.ImageIndex()
	if err != nil {
		return err
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return err
	}
	for _, descriptor := range manifest.Manifests {
		source, err := name.ParseReference(descriptor.Annotations["org.opencontainers.image.ref.name"])
		if err != nil {
			return fmt.Errorf("image %s has no usable reference annotation: %w", descriptor.Digest, err)
		}
		target, err := name.ParseReference(registry+"/"+source.Context().RepositoryStr()+":"+source.Identifier(), name.Insecure)
		if err != nil {
			return err
		}
		img, err := index.Image(descriptor.Digest)
		if err != nil {
			return err
		}
		if err := remote.Write(target, img); err != nil {
			return fmt.Errorf("push %s: %w", target, err)
		}
		fmt.Printf("pushed %s (%s)\n", target, descriptor.Digest)
	}
	return nil
}
