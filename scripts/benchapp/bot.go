package main

import (
	"context"
	"fmt"
	"os"

	"approvalbot/internal/testing/botproc"
)

// startBot runs bin as the server on a free 127.0.0.1 port over the data
// folder data, with its log in logPath, and waits until it says where it
// listens.
func startBot(ctx context.Context, bin, data, logPath, logLevel string) (*botproc.Proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bot log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	b, err := botproc.Start(ctx, bin, botproc.Options{Data: data, LogLevel: logLevel, Stderr: logFile})
	if err != nil {
		return nil, fmt.Errorf("%w; see %s", err, logPath)
	}
	return b, nil
}

// fileSize is the size of path, or 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
