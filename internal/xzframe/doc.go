// Package xzframe encodes and parses the framing of the .xz container
// format (https://tukaani.org/xz/xz-file-format.txt): the stream header
// and footer, the index, the multibyte integers they are made of, and
// the blocks' integrity checks. mkimage writes multi-block .xz files
// with it; imagestore reads their index with it, to decode the blocks
// in parallel.
//
//	+-----------+---------+-----+---------+-------------------------------------+--------------+
//	| stream    | block 1 | ... | block n | index: 0x00, n, n × (unpadded size, | stream footer|
//	| header 12 |         |     |         | uncompressed size), pad, CRC32      | 12           |
//	+-----------+---------+-----+---------+-------------------------------------+--------------+
//	header: magic FD "7zXZ" 00 | stream flags (00, check ID) | CRC32 of the flags
//	each block: header | compressed data | padding to 4 | check (0, 4, 8 or 32 bytes)
//	footer: CRC32 | backward size (the index's, /4 - 1) | stream flags | "YZ"
//
// It does not own block headers, filters or compressed data: mkimage
// writes its LZMA2 block headers, and a decoder (ulikunitz/xz,
// mikelolasagasti/xz) reads them. It knows one stream, not concatenated
// streams or stream padding.
//
// Parse functions read untrusted input (an uploaded image): they check
// every CRC32, refuse what the format does not allow, and allocate no
// more than their input's size. It imports the standard library only,
// as imagestore's unpack helper links it.
package xzframe
