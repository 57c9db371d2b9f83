package main

import (
	"io"
	"testing"
)

func TestConfig_ConsoleFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--cors-origins", "https://app.example.com, http://127.0.0.1:3000"}, true},
		{[]string{"--cors-origins", "https://app.example.com/"}, true},
		{[]string{"--cors-origins", "*"}, false},
		{[]string{"--cors-origins", "https://*.example.com"}, false},
		{[]string{"--cors-origins", "app.example.com"}, false},
		{[]string{"--cors-origins", "https://app.example.com/path"}, false},
		{[]string{"--frame-origins", "ftp://x"}, false},
		{[]string{"--portal-token-ttl", "48h"}, false},
		{[]string{"--portal-token-ttl", "48h", "--portal-token-max-ttl", "72h"}, true},
	} {
		err := NewMain(io.Discard, io.Discard).ParseFlags(c.args)
		if (err == nil) != c.ok {
			t.Errorf("%v: error %v, want ok=%v", c.args, err, c.ok)
		}
	}
}
