package flatmap

// Collide makes keys share 3 hashes until the returned func is called.
func Collide() func() {
	collide = func(k string) uint64 { return uint64(len(k) % 3) }
	return func() { collide = nil }
}
