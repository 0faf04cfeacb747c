// Command demo-web is the test cluster's demo workload: a small static HTTP server, plus a client
// mode so tests can check pod-to-pod traffic with nothing else in the image.
//
//	demo-web [serve] [-listen :8080] [-message TEXT]   serve / (the message and the pod name) and /healthz
//	demo-web get URL                                    print the body of URL; exit 1 unless 2xx
//	demo-web cat FILE...                                print files (e.g. /proc/net/route in tests)
//	demo-web version                                    print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const version = "1.0.0"

func main() {
	args := os.Args[1:]
	command := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "get" || args[0] == "cat" || args[0] == "version") {
		command, args = args[0], args[1:]
	}
	switch command {
	case "get":
		os.Exit(get(args))
	case "cat":
		os.Exit(cat(args))
	case "version":
		fmt.Println("demo-web", version)
	default:
		os.Exit(serve(args))
	}
}

func serve(args []string) int {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := flags.String("listen", ":8080", "address to listen on")
	message := flags.String("message", envOr("MESSAGE", "hello from demo-web"), "text served on / (env MESSAGE)")
	_ = flags.Parse(args)

	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (served by %s, demo-web %s)\n", *message, host, version)
	})
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}()
	fmt.Printf("demo-web %s listening on %s\n", version, *listen)
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "demo-web:", err)
		return 1
	}
	return 0
}

func get(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: demo-web get URL")
		return 2
	}
	client := &http.Client{Timeout: 5 * time.Second}
	response, err := client.Get(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-web get:", err)
		return 1
	}
	defer response.Body.Close()
	_, _ = io.Copy(os.Stdout, response.Body)
	if response.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, "demo-web get: status", response.Status)
		return 1
	}
	return 0
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func cat(paths []string) int {
	for _, path := range paths {
		content, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo-web cat:", err)
			return 1
		}
		_, _ = os.Stdout.Write(content)
	}
	return 0
}
