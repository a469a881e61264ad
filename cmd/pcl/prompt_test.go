package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
)

func TestReadLineGivesUpWhenInterrupted(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	a := &app{stdin: r, stderr: io.Discard, lines: bufio.NewReader(r)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.readLine(ctx, "password"); err == nil || err.Error() != "interrupted" {
		t.Errorf("readLine after Ctrl-C: %v", err)
	}
}

func TestReadLineReadsLinesInOrder(t *testing.T) {
	in := strings.NewReader("secret pw\r\n123456\n")
	a := &app{stdin: in, stderr: io.Discard, lines: bufio.NewReader(in)}
	ctx := context.Background()
	pw, err := a.password(ctx, true, false)
	if err != nil || pw != "secret pw" {
		t.Fatalf("password = %q, %v", pw, err)
	}
	code, err := a.code(ctx, "Code: ", "hint")
	if err != nil || code != "123456" {
		t.Fatalf("code = %q, %v", code, err)
	}
	if _, err := a.code(ctx, "Code: ", "pass --otp"); err == nil || err.Error() != "no one-time code on stdin; pass --otp" {
		t.Errorf("code at EOF: %v", err)
	}
}
