// Shared by both generators; generate.sh copies it into each package and fixes the package name.
package PACKAGE

// plausible walks one msgpack object and reports whether every declared length fits in the
// remaining bytes (so decoding it cannot trigger a giant allocation). Returns bytes consumed.
func plausible(b []byte, depth int) (int, bool) {
	if len(b) == 0 || depth > 32 {
		return 0, false
	}
	be := func(n int) (int, bool) {
		if len(b) < 1+n {
			return 0, false
		}
		v := 0
		for _, c := range b[1 : 1+n] {
			v = v<<8 | int(c)
		}
		return v, true
	}
	c := b[0]
	var head, length, items int
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, true
	case c == 0xcc || c == 0xd0:
		return 2, len(b) >= 2
	case c == 0xcd || c == 0xd1:
		return 3, len(b) >= 3
	case c == 0xce || c == 0xd2 || c == 0xca:
		return 5, len(b) >= 5
	case c == 0xcf || c == 0xd3 || c == 0xcb:
		return 9, len(b) >= 9
	case c >= 0xa0 && c <= 0xbf:
		head, length = 1, int(c&0x1f)
	case c == 0xd9 || c == 0xc4:
		v, ok := be(1)
		if !ok {
			return 0, false
		}
		head, length = 2, v
	case c == 0xda || c == 0xc5:
		v, ok := be(2)
		if !ok {
			return 0, false
		}
		head, length = 3, v
	case c == 0xdb || c == 0xc6:
		v, ok := be(4)
		if !ok {
			return 0, false
		}
		head, length = 5, v
	case c >= 0x90 && c <= 0x9f:
		head, items = 1, int(c&0x0f)
	case c >= 0x80 && c <= 0x8f:
		head, items = 1, 2*int(c&0x0f)
	case c == 0xdc || c == 0xde:
		v, ok := be(2)
		if !ok {
			return 0, false
		}
		head, items = 3, v
		if c == 0xde {
			items *= 2
		}
	case c == 0xdd || c == 0xdf:
		v, ok := be(4)
		if !ok {
			return 0, false
		}
		head, items = 5, v
		if c == 0xdf {
			items *= 2
		}
	default:
		return 0, false // ext and 0xc1: not produced by memberlist; treat as implausible
	}
	if items == 0 {
		if head+length > len(b) {
			return 0, false
		}
		return head + length, true
	}
	if items > len(b) {
		return 0, false
	}
	pos := head
	for k := 0; k < items; k++ {
		n, ok := plausible(b[pos:], depth+1)
		if !ok {
			return 0, false
		}
		pos += n
	}
	return pos, true
}
