/* json_escape (util.c) against a byte-at-a-time reference of Docker's jsonlog escaping (Go's encoding/json with
 * HTML escaping: \" \\ \n \r \t, other controls and <>& as \u00XX, invalid UTF-8 as \ufffd one per byte,
 * U+2028/U+2029 escaped), on fixed cases, every byte value, runs of every length around the 16-byte blocks,
 * and deterministic pseudo-random inputs. */
#include "../util.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static size_t ref_utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0], cp, min;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : len;
}

static size_t ref_escape(char *out, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			out[o++] = '\\';
			out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 15];
			o += 6;
		} else if (c < 0x80) {
			out[o++] = (char)c;
		} else {
			size_t l = ref_utf8_len(s + i, n - i);
			if (l == 0) {
				memcpy(out + o, "\\ufffd", 6);
				o += 6;
				i++;
				continue;
			}
			if (l == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
				memcpy(out + o, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
				o += 6;
			} else {
				memcpy(out + o, s + i, l);
				o += l;
			}
			i += l;
			continue;
		}
		i++;
	}
	return o;
}

/* json_escape(s) equals the reference; the output buffer is exactly the documented 6*n bytes (+ a guard). */
static int same(const unsigned char *s, size_t n)
{
	char *want = malloc(6 * n + 1), *got = malloc(6 * n + 16);
	memset(got + 6 * n, 0x5a, 16);
	size_t wl = ref_escape(want, s, n), gl = json_escape(got, (const char *)s, n);
	int ok = wl == gl && memcmp(want, got, wl) == 0;
	for (int k = 0; k < 16; k++)
		ok = ok && got[6 * n + k] == 0x5a;
	if (!ok)
		fprintf(stderr, "escape of %zu bytes differs (want %zu bytes, got %zu)\n", n, wl, gl);
	free(want);
	free(got);
	return ok;
}

static int escapes_to(const char *in, const char *want)
{
	char out[256];
	size_t n = json_escape(out, in, strlen(in));
	return n == strlen(want) && memcmp(out, want, n) == 0;
}

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static unsigned next(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)(rng >> 33);
}

int main(void)
{
	CHECK(escapes_to("plain text", "plain text"));
	CHECK(escapes_to("a\"b\\c\nd\re\tf", "a\\\"b\\\\c\\nd\\re\\tf"));
	CHECK(escapes_to("<a>&", "\\u003ca\\u003e\\u0026"));
	CHECK(escapes_to("\x01\x1f\x7f", "\\u0001\\u001f\x7f"));
	CHECK(escapes_to("caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"));
	CHECK(escapes_to("\xff\xfe", "\\ufffd\\ufffd"));
	CHECK(escapes_to("\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029"));
	CHECK(escapes_to("\xc3", "\\ufffd"));
	{
		char out[64];
		CHECK(json_escape(out, "\0\0\0", 3) == 18 && memcmp(out, "\\u0000\\u0000\\u0000", 18) == 0);
	}

	/* every byte value alone, and between plain bytes */
	for (int c = 0; c < 256; c++) {
		unsigned char one[1] = {(unsigned char)c}, mid[5] = {'a', 'b', (unsigned char)c, 'c', 'd'};
		CHECK(same(one, 1));
		CHECK(same(mid, 5));
	}

	/* runs of one byte (escaped, plain, invalid) of every length up to 100, after 0..17 plain bytes */
	static const unsigned char run_bytes[] = {0, '\n', '"', '\\', '<', 0x1b, 'x', 0xff, 0x80};
	unsigned char buf[4096];
	for (size_t b = 0; b < sizeof(run_bytes); b++)
		for (size_t pre = 0; pre < 18; pre++)
			for (size_t len = 1; len <= 100; len++) {
				memset(buf, 'p', pre);
				memset(buf + pre, run_bytes[b], len);
				buf[pre + len] = 'q';
				CHECK(same(buf, pre + len));
				CHECK(same(buf, pre + len + 1));
			}

	/* pseudo-random inputs: bytes from a small alphabet (so runs and mixes are common), and any bytes */
	static const unsigned char alphabet[] = {'a', ' ', 'z', 0, 0, '\n', '"', '&', 0xc3, 0xa9, 0xe2, 0x80, 0xa8, 0xff, 0x7f, '\t'};
	for (int round = 0; round < 4000; round++) {
		size_t n = next() % (round < 2000 ? 64 : sizeof(buf));
		int any = round % 2;
		for (size_t i = 0; i < n;) {
			unsigned char c = any ? (unsigned char)next() : alphabet[next() % sizeof(alphabet)];
			size_t rep = next() % 4 == 0 ? next() % 40 + 1 : 1;
			for (size_t k = 0; k < rep && i < n; k++)
				buf[i++] = c;
		}
		CHECK(same(buf, n));
	}
	return check_report("escape_test");
}
