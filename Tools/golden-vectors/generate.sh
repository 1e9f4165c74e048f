#!/bin/sh
# Regenerates Tests/GossipTests/GoGoldenVectors.swift from Debian's Go sources (needs golang-go and
# golang-github-hashicorp-{memberlist,serf,go-msgpack}-dev; works offline in GOPATH mode).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
gp=$(mktemp -d)
mkdir -p "$gp/src/github.com/hashicorp"
cp -r /usr/share/gocode/src/github.com/hashicorp/memberlist /usr/share/gocode/src/github.com/hashicorp/serf "$gp/src/github.com/hashicorp/"
cp "$here/memberlist_vectors_test.go" "$gp/src/github.com/hashicorp/memberlist/"
cp "$here/serf_vectors_test.go" "$gp/src/github.com/hashicorp/serf/serf/"
sed 's/^package PACKAGE/package memberlist/' "$here/plausible_test.go" > "$gp/src/github.com/hashicorp/memberlist/plausible_test.go"
sed 's/^package PACKAGE/package serf/' "$here/plausible_test.go" > "$gp/src/github.com/hashicorp/serf/serf/plausible_test.go"
export GO111MODULE=off GOPATH="$gp:/usr/share/gocode" GOFLAGS= GOPROXY=off GOCACHE="$gp/cache"
{
  (cd "$gp/src/github.com/hashicorp/memberlist" && go test -count=1 -v -run 'TestEmitGoldenVectors|TestEmitLZWDecodeVectors|TestEmitDecodeDifferential|TestEmitLZWSaturatedStream' .)
  (cd "$gp/src/github.com/hashicorp/serf/serf" && go test -count=1 -v -run 'TestEmitSerfGoldenVectors|TestEmitSerfDecodeDifferential' .)
} | grep '^VECTOR ' | sort | python3 "$here/to_swift.py" > "$here/../../Tests/GossipTests/GoGoldenVectors.swift"
rm -rf "$gp"
