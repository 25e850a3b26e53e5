package pluginhost

// maxJSONDepth is encoding/json's nesting limit, which validJSON keeps so
// that it accepts exactly what json.Valid accepts.
const maxJSONDepth = 10000

// validJSON reports whether data is one JSON value, exactly as json.Valid
// does: the same grammar, the same nesting limit, and string bytes at or
// above 0x80 taken as they are (json.Valid does not check UTF-8 either).
// Every result value a plugin sends is checked, and json.Valid's
// byte-at-a-time state machine was most of the host's CPU for a large one
// (4.5 ms of a 1 MiB result's ~10 ms round trip); strings, which carry
// most of such a value (a command's stdout), are skipped here in a tight
// loop.
func validJSON(data []byte) bool {
	var stack []byte // the open containers: '{' or '['
	i := skipSpace(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if len(stack) == maxJSONDepth {
				return false
			}
			stack = append(stack, c)
			i = skipSpace(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = objectKey(data, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			i = skipString(data, i)
		case c == '-' || (c >= '0' && c <= '9'):
			i = skipNumber(data, i)
		case c == 't':
			i = skipLiteral(data, i, "true")
		case c == 'f':
			i = skipLiteral(data, i, "false")
		case c == 'n':
			i = skipLiteral(data, i, "null")
		default:
			return false
		}
		if i < 0 {
			return false
		}
		// A value ended at i: close containers until a separator or the
		// end.
		for {
			i = skipSpace(data, i)
			if len(stack) == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			top := stack[len(stack)-1]
			if data[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if data[i] != ',' {
				return false
			}
			i = skipSpace(data, i+1)
			if top == '{' {
				if i = objectKey(data, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// objectKey skips `"key" :` and the space after it, from i; -1 if it is
// not there.
func objectKey(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = skipSpace(data, skipString(data, i)); i < 0 || i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipSpace(data, i+1)
}

func skipSpace(data []byte, i int) int {
	for i >= 0 && i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString skips the string starting at data[i] == '"'; -1 if it is
// not a valid one.
func skipString(data []byte, i int) int {
	i++
	for i < len(data) {
		c := data[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		switch c {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(data) {
				return -1
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+5 >= len(data) || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
	return -1
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(data []byte, i int) bool { return i < len(data) && data[i] >= '0' && data[i] <= '9' }

// skipNumber skips the number starting at i; -1 if it is not a valid one.
func skipNumber(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case isDigit(data, i):
		for isDigit(data, i) {
			i++
		}
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		if !isDigit(data, i) {
			return -1
		}
		for isDigit(data, i) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if !isDigit(data, i) {
			return -1
		}
		for isDigit(data, i) {
			i++
		}
	}
	return i
}

func skipLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}
