// Golden-vector generator: compiled INSIDE Debian's memberlist 0.2.2 package (so it uses the real
// unexported structs, encode(), makeCompoundMessage() and compressPayload()). See README.md.
package memberlist

import (
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/hashicorp/go-msgpack/codec"
)

func emit(name string, b []byte) { fmt.Printf("VECTOR %s %x\n", name, b) }

func mustEncode(t messageType, v interface{}) []byte {
	b, err := encode(t, v)
	if err != nil {
		panic(err)
	}
	return b.Bytes()
}

// lcgBytes is mirrored in the Swift tests (GoldenVectorTests.lcgBytes).
func lcgBytes(n int, alphabet uint32) []byte {
	out := make([]byte, n)
	x := uint32(12345)
	for i := range out {
		x = x*1103515245 + 12345
		out[i] = byte((x >> 16) % alphabet)
	}
	return out
}

func withCrc(msg []byte) []byte {
	header := []byte{byte(hasCrcMsg), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(header[1:], crc32.ChecksumIEEE(msg))
	return append(header, msg...)
}

func TestEmitGoldenVectors(t *testing.T) {
	local := []byte{127, 0, 0, 1}
	emit("ping_min", mustEncode(pingMsg, &ping{SeqNo: 1, Node: "n1"}))
	emit("ping_full", mustEncode(pingMsg, &ping{SeqNo: 70000, Node: "node-b", SourceAddr: local, SourcePort: 7946, SourceNode: "node-a"}))
	emit("indirect_ping", mustEncode(indirectPingMsg, &indirectPingReq{SeqNo: 300, Target: []byte{10, 0, 0, 2}, Port: 8301, Node: "target", Nack: true, SourceAddr: local, SourcePort: 8301, SourceNode: "asker"}))
	emit("ack_empty", mustEncode(ackRespMsg, &ackResp{SeqNo: 5}))
	emit("ack_payload", mustEncode(ackRespMsg, &ackResp{SeqNo: 4294967295, Payload: []byte{1, 2, 3}}))
	emit("nack", mustEncode(nackRespMsg, &nackResp{SeqNo: 9}))
	emit("err", mustEncode(errMsg, &errResp{Error: "Encryption is configured but remote state is not encrypted"}))
	emit("suspect", mustEncode(suspectMsg, &suspect{Incarnation: 3, Node: "n2", From: "n1"}))
	alv := alive{Incarnation: 300, Node: "n1", Addr: local, Port: 7946, Meta: []byte{0xff, 0x80}, Vsn: []uint8{1, 5, 2, 2, 5, 5}}
	emit("alive", mustEncode(aliveMsg, &alv))
	emit("dead", mustEncode(deadMsg, &dead{Incarnation: 7, Node: "n3", From: "n3"}))
	emit("user_msg_header", mustEncode(userMsg, &userMsgHeader{UserMsgLen: 1000}))

	// A push/pull stream body exactly as sendLocalState lays it out before compression/encryption.
	var pp bytes.Buffer
	pp.WriteByte(byte(pushPullMsg))
	enc := codec.NewEncoder(&pp, &codec.MsgpackHandle{})
	userState := []byte{2, 0x81, 0xa1, 0x41, 0x01}
	enc.Encode(&pushPullHeader{Nodes: 2, UserStateLen: len(userState), Join: true})
	enc.Encode(&pushNodeState{Name: "n1", Addr: local, Port: 7946, Meta: []byte{0xff, 0x80}, Incarnation: 1, State: StateAlive, Vsn: []uint8{1, 5, 2, 2, 5, 5}})
	enc.Encode(&pushNodeState{Name: "n2", Addr: []byte{127, 0, 0, 2}, Port: 7947, Incarnation: 9, State: StateDead, Vsn: []uint8{1, 5, 2, 2, 5, 5}})
	pp.Write(userState)
	emit("push_pull", pp.Bytes())

	ping1 := mustEncode(pingMsg, &ping{SeqNo: 1, Node: "n1"})
	susp := mustEncode(suspectMsg, &suspect{Incarnation: 3, Node: "n2", From: "n1"})
	emit("compound", makeCompoundMessage([][]byte{ping1, susp}).Bytes())

	user := append([]byte{byte(userMsg)}, []byte{1, 0x82, 0xa5, 'L', 'T', 'i', 'm', 'e', 0x05, 0xa4, 'N', 'o', 'd', 'e', 0xa2, 'n', '1'}...)
	gossip := makeCompoundMessage([][]byte{mustEncode(aliveMsg, &alv), user}).Bytes()
	compressed, err := compressPayload(gossip)
	if err != nil {
		panic(err)
	}
	emit("gossip_plain", gossip)
	emit("gossip_packet", withCrc(compressed.Bytes()))

	for name, input := range map[string][]byte{
		"lzw_empty":  {},
		"lzw_one":    {0x41},
		"lzw_text":   []byte("TOBEORNOTTOBEORTOBEORNOT#TOBEORNOTTOBEORTOBEORNOT"),
		"lzw_zeros":  make([]byte, 5000),
		"lzw_lcg16":  lcgBytes(30000, 16),
		"lzw_lcg256": lcgBytes(3000, 256),
	} {
		c, err := compressPayload(input)
		if err != nil {
			panic(err)
		}
		emit(name, c.Bytes())
	}
	emit("crc_hello", []byte(fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte("hello")))))
}

// TestEmitLZWDecodeVectors: differential vectors for the decoder. Valid streams are mutated
// deterministically (mirrored in Swift: LZWDifferentialTests.mutatedStream) and decoded with Go's
// reader exactly as memberlist's decompressBuffer does; we record the outcome as
// "ok:<len>:<crc32>" or "eof"/"invalid" errors.
func TestEmitLZWDecodeVectors(t *testing.T) {
	for i := 0; i < 200; i++ {
		input := mutatedStream(i)
		r := lzw.NewReader(bytes.NewReader(input), lzw.LSB, lzwLitWidth)
		var out bytes.Buffer
		_, err := io.Copy(&out, r)
		outcome := ""
		switch {
		case err == nil:
			outcome = fmt.Sprintf("ok:%d:%08x", out.Len(), crc32.ChecksumIEEE(out.Bytes()))
		case err == io.ErrUnexpectedEOF:
			outcome = "eof"
		default:
			outcome = "invalid"
		}
		fmt.Printf("VECTOR lzwdiff_%03d %s\n", i, outcome)
	}
}

// mutatedStream: compress lcgBytes(200+7*i, 4+i%13), then flip/overwrite a few bits chosen by an LCG.
func mutatedStream(i int) []byte {
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, lzwLitWidth)
	w.Write(lcgBytes(200+7*i, uint32(4+i%13)))
	w.Close()
	b := buf.Bytes()
	x := uint32(i*7919 + 1)
	for k := 0; k < 1+i%4; k++ {
		x = x*1103515245 + 12345
		pos := int(x>>8) % len(b)
		x = x*1103515245 + 12345
		b[pos] ^= byte(x >> 16)
	}
	if i%5 == 0 {
		b = b[:len(b)-1-i%7]
	}
	return b
}

// TestEmitDecodeDifferential: Go's decoder on deterministically corrupted messages (mirrored in
// Swift: DecodeDifferentialTests.corrupt). For each case we print Go's re-encoding of what it
// decoded, or "err". Lets the Swift side check that whenever both decoders accept an input they
// read the same values.
func TestEmitDecodeDifferential(t *testing.T) {
	local := []byte{127, 0, 0, 1}
	bases := map[string][]byte{
		"ping":  mustEncode(pingMsg, &ping{SeqNo: 70000, Node: "node-b", SourceAddr: local, SourcePort: 7946, SourceNode: "node-a"}),
		"alive": mustEncode(aliveMsg, &alive{Incarnation: 300, Node: "n1", Addr: local, Port: 7946, Meta: []byte{0xff, 0x80}, Vsn: []uint8{1, 5, 2, 2, 5, 5}}),
		"ind":   mustEncode(indirectPingMsg, &indirectPingReq{SeqNo: 300, Target: []byte{10, 0, 0, 2}, Port: 8301, Node: "target", Nack: true, SourceAddr: local, SourcePort: 8301, SourceNode: "asker"}),
	}
	for _, name := range []string{"alive", "ind", "ping"} {
		for i := 0; i < 300; i++ {
			b := corrupt(bases[name], i)
			if _, ok := plausible(b[1:], 0); !ok {
				// go-msgpack allocates whatever length a header claims before reading: a forged
				// length takes the Go process down (runtime: out of memory). Record it as rejected.
				fmt.Printf("VECTOR diff_%s_%03d err\n", name, i)
				continue
			}
			var out []byte
			var err error
			switch name {
			case "ping":
				var m ping
				if err = decode(b[1:], &m); err == nil {
					out = mustEncode(pingMsg, &m)
				}
			case "alive":
				var m alive
				if err = decode(b[1:], &m); err == nil {
					out = mustEncode(aliveMsg, &m)
				}
			case "ind":
				var m indirectPingReq
				if err = decode(b[1:], &m); err == nil {
					out = mustEncode(indirectPingMsg, &m)
				}
			}
			if err != nil {
				fmt.Printf("VECTOR diff_%s_%03d err\n", name, i)
			} else {
				fmt.Printf("VECTOR diff_%s_%03d %x\n", name, i, out)
			}
		}
	}
}

func corrupt(base []byte, i int) []byte {
	b := append([]byte(nil), base...)
	x := uint32(i*104729 + 7)
	for k := 0; k < 1+i%3; k++ {
		x = x*1103515245 + 12345
		pos := 1 + int(x>>8)%(len(b)-1)
		x = x*1103515245 + 12345
		b[pos] ^= byte(x >> 16)
	}
	return b
}


// TestEmitLZWSaturatedStream: a hand-made stream that never clears, so the reader's table fills
// and its width stays at 12 bits (Go's writer always clears first, so only a foreign or hostile
// sender produces this). Codes: 5000 literals, then references to table entries, then EOF.
func TestEmitLZWSaturatedStream(t *testing.T) {
	var out []byte
	var bits uint32
	var nBits uint
	width, hi, overflow := uint(9), uint32(257), uint32(512)
	emitCode := func(c uint32) {
		bits |= c << nBits
		nBits += width
		for nBits >= 8 {
			out = append(out, byte(bits))
			bits >>= 8
			nBits -= 8
		}
		if c == 256 || c == 257 { // clear/EOF do not take a table slot
			return
		}
		hi++
		if hi >= overflow {
			if width == 12 {
				hi--
			} else {
				width++
				overflow <<= 1
			}
		}
	}
	emitCode(256)
	for i := 0; i < 5000; i++ {
		emitCode(uint32((i * 7) % 256))
	}
	for _, c := range []uint32{300, 4095, 1000, 258, 4000} {
		emitCode(c)
	}
	emitCode(257)
	if nBits > 0 {
		out = append(out, byte(bits))
	}
	r := lzw.NewReader(bytes.NewReader(out), lzw.LSB, lzwLitWidth)
	var dec bytes.Buffer
	_, err := io.Copy(&dec, r)
	if err != nil {
		panic(err)
	}
	emit("lzw_saturated_stream", out)
	emit("lzw_saturated_result", []byte(fmt.Sprintf("%d:%08x", dec.Len(), crc32.ChecksumIEEE(dec.Bytes()))))
}
