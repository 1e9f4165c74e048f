// Golden-vector generator: compiled INSIDE Debian's serf 0.9.4 package `serf` (real unexported
// message structs and encodeMessage/encodeFilter/encodeRelayMessage). See README.md.
package serf

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/codec"
	"github.com/hashicorp/serf/coordinate"
)

func emit(name string, b []byte) { fmt.Printf("VECTOR %s %x\n", name, b) }

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestEmitSerfGoldenVectors(t *testing.T) {
	emit("serf_join", must(encodeMessage(messageJoinType, &messageJoin{LTime: 5, Node: "n1"})))
	emit("serf_leave", must(encodeMessage(messageLeaveType, &messageLeave{LTime: 300, Node: "n2", Prune: true})))
	emit("serf_user_event", must(encodeMessage(messageUserEventType, &messageUserEvent{LTime: 12, Name: "deploy", Payload: []byte("v1.2"), CC: true})))
	nodeFilter := must(encodeFilter(filterNodeType, filterNode{"a", "b"}))
	tagFilter := must(encodeFilter(filterTagType, &filterTag{Tag: "role", Expr: "web.*"}))
	emit("serf_filter_node", nodeFilter)
	emit("serf_filter_tag", tagFilter)
	emit("serf_query", must(encodeMessage(messageQueryType, &messageQuery{
		LTime: 77, ID: 0xdeadbeef, Addr: []byte{127, 0, 0, 1}, Port: 7946, SourceNode: "n1",
		Filters: [][]byte{nodeFilter, tagFilter}, Flags: queryFlagAck, RelayFactor: 2,
		Timeout: 5 * time.Second, Name: "_serf_list-keys", Payload: []byte{7, 0x80},
	})))
	emit("serf_query_response", must(encodeMessage(messageQueryResponseType, &messageQueryResponse{LTime: 77, ID: 0xdeadbeef, From: "n2", Flags: queryFlagAck})))
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	emit("serf_key_request", must(encodeMessage(messageKeyRequestType, &keyRequest{Key: key})))
	emit("serf_key_response", must(encodeMessage(messageKeyResponseType, &nodeKeyResponse{Result: true, Keys: []string{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, PrimaryKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="})))
	emit("serf_key_response_error", must(encodeMessage(messageKeyResponseType, &nodeKeyResponse{Message: "No keyring to modify (encryption not enabled)"})))
	emit("serf_conflict_response", must(encodeMessage(messageConflictResponseType, &Member{
		Name: "n1", Addr: net.IPv4(127, 0, 0, 1).To4(), Port: 7946, Tags: map[string]string{"role": "web"},
		Status: StatusAlive, ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 5,
	})))
	events := make([]*userEvents, 4)
	events[2] = &userEvents{LTime: 11, Events: []userEvent{{Name: "deploy", Payload: []byte("v1")}}}
	emit("serf_push_pull", must(encodeMessage(messagePushPullType, &messagePushPull{
		LTime: 3, StatusLTimes: map[string]LamportTime{"n1": 2}, LeftMembers: []string{"old"},
		EventLTime: 12, Events: events, QueryLTime: 78,
	})))
	emit("serf_relay", must(encodeRelayMessage(messageQueryResponseType, net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7946}, "n2",
		&messageQueryResponse{LTime: 1, ID: 2, From: "n3", Payload: []byte("ok")})))
	var tagBuf bytes.Buffer
	tagBuf.WriteByte(tagMagicByte)
	codec.NewEncoder(&tagBuf, &codec.MsgpackHandle{}).Encode(map[string]string{"dc": "dc1"})
	emit("serf_tags", tagBuf.Bytes())
	var emptyTags bytes.Buffer
	emptyTags.WriteByte(tagMagicByte)
	codec.NewEncoder(&emptyTags, &codec.MsgpackHandle{}).Encode(map[string]string{})
	emit("serf_tags_empty", emptyTags.Bytes())
	var ack bytes.Buffer
	ack.WriteByte(PingVersion)
	coord := coordinate.NewCoordinate(coordinate.DefaultConfig())
	coord.Vec[0] = 0.001
	coord.Error = 1.5
	coord.Height = 1.0e-5
	codec.NewEncoder(&ack, &codec.MsgpackHandle{}).Encode(coord)
	emit("serf_ack_payload", ack.Bytes())
}

// TestEmitSerfDecodeDifferential: serf's decoder on deterministically corrupted messages (mirrored
// in Swift: SerfDecodeDifferentialTests.corrupt); prints Go's re-encoding of what it read, or "err".
func TestEmitSerfDecodeDifferential(t *testing.T) {
	nodeFilter := must(encodeFilter(filterNodeType, filterNode{"a", "b"}))
	events := make([]*userEvents, 3)
	events[1] = &userEvents{LTime: 11, Events: []userEvent{{Name: "deploy", Payload: []byte("v1")}}}
	bases := map[string]interface{}{
		"query": &messageQuery{LTime: 77, ID: 0xdeadbeef, Addr: []byte{127, 0, 0, 1}, Port: 7946, SourceNode: "n1",
			Filters: [][]byte{nodeFilter}, Flags: queryFlagAck, RelayFactor: 2, Timeout: 5 * time.Second, Name: "q", Payload: []byte{7, 0x80}},
		"pushpull": &messagePushPull{LTime: 3, StatusLTimes: map[string]LamportTime{"n1": 2}, LeftMembers: []string{"old"},
			EventLTime: 12, Events: events, QueryLTime: 78},
		"event": &messageUserEvent{LTime: 12, Name: "deploy", Payload: []byte("v1.2"), CC: true},
	}
	types := map[string]messageType{"query": messageQueryType, "pushpull": messagePushPullType, "event": messageUserEventType}
	for _, name := range []string{"event", "pushpull", "query"} {
		base := must(encodeMessage(types[name], bases[name]))
		for i := 0; i < 300; i++ {
			b := corrupt(base, i)
			if _, ok := plausible(b[1:], 0); !ok {
				fmt.Printf("VECTOR diff_%s_%03d err\n", name, i)
				continue
			}
			var out []byte
			var err error
			switch name {
			case "query":
				var m messageQuery
				if err = decodeMessage(b[1:], &m); err == nil {
					out = must(encodeMessage(messageQueryType, &m))
				}
			case "pushpull":
				var m messagePushPull
				if err = decodeMessage(b[1:], &m); err == nil {
					out = must(encodeMessage(messagePushPullType, &m))
				}
			case "event":
				var m messageUserEvent
				if err = decodeMessage(b[1:], &m); err == nil {
					out = must(encodeMessage(messageUserEventType, &m))
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
