package upstream

import (
	"hash/crc32"
	"hash/maphash"
)

// Fingerprint identifies an account's raw listing bytes within this process
// (a provider client computes it as it splits a listing; the poller remembers
// it without knowing the provider): equal bytes give equal fingerprints, and
// two different byte strings share one with a probability of about 2^-96.
// It is a maphash value (AES-based, keyed with a seed drawn per process, so
// that no upstream can aim at a collision), a CRC-32C (hardware-computed)
// and the length: a million-account scan computes one for every account,
// and this costs two thirds of two maphash passes. The seed is per process,
// so a fingerprint is never stored; the evidence hash of an account that is
// decoded is its SHA-256 (Hash).
type Fingerprint [2]uint64

var (
	fpSeed  = maphash.MakeSeed()
	fpTable = crc32.MakeTable(crc32.Castagnoli)
)

// FingerprintOf fingerprints b.
func FingerprintOf(b []byte) Fingerprint {
	return Fingerprint{maphash.Bytes(fpSeed, b), uint64(crc32.Checksum(b, fpTable))<<32 | uint64(uint32(len(b)))}
}
