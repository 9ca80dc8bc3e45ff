// Package flatmap is a string-keyed map laid out without pointers: the keys
// back to back in one byte slice, the entries in another slice, an index
// from the keys' hashes to the entries. A Go map of a million string keys
// is a million objects (and a table of pointers) that every garbage
// collection walks; a Table of a million is three objects the collector
// does not look into, as long as its values hold no pointers either.
package flatmap

import (
	"hash/maphash"
	"unsafe"
)

// Table maps strings to values of V, which should hold no pointers (the
// point of it). The zero Table is empty and ready to use; it is not safe
// for concurrent use.
type Table[V any] struct {
	index  map[uint64]int32 // key hash → its first entry (chained by next)
	ents   []entry[V]       // ents[0] is no entry
	free   []int32
	keys   []byte // the entries' keys, back to back
	inUse  int    // bytes of keys still used (the rest: removed entries')
	n      int
	seeded bool
	seed   maphash.Seed
}

type entry[V any] struct {
	off, size uint32 // the key is keys[off:off+size]
	next      int32  // the next entry whose key has the same hash
	live      bool
	v         V
}

// collide, in tests, gives keys few hashes (their chains are walked).
var collide func(string) uint64

func (t *Table[V]) hash(k string) uint64 {
	if collide != nil {
		return collide(k)
	}
	if !t.seeded {
		t.seed, t.seeded = maphash.MakeSeed(), true
	}
	return maphash.String(t.seed, k)
}

func (t *Table[V]) key(e *entry[V]) string {
	return unsafe.String(unsafe.SliceData(t.keys[e.off:]), int(e.size))
}

// find is the entry of k (0: none).
func (t *Table[V]) find(k string, h uint64) int32 {
	for i := t.index[h]; i != 0; i = t.ents[i].next {
		if e := &t.ents[i]; t.key(e) == k {
			return i
		}
	}
	return 0
}

// Get returns k's value.
func (t *Table[V]) Get(k string) (V, bool) {
	if t.n == 0 {
		var zero V
		return zero, false
	}
	if i := t.find(k, t.hash(k)); i != 0 {
		return t.ents[i].v, true
	}
	var zero V
	return zero, false
}

// Put sets k's value; it reports whether k is new.
func (t *Table[V]) Put(k string, v V) bool {
	h := t.hash(k)
	if i := t.find(k, h); i != 0 {
		t.ents[i].v = v
		return false
	}
	if t.index == nil {
		t.index = map[uint64]int32{}
		t.ents = make([]entry[V], 1)
	}
	if len(t.keys) > 1<<20 && t.inUse < len(t.keys)/2 {
		t.compact()
	}
	var i int32
	if n := len(t.free); n > 0 {
		i, t.free = t.free[n-1], t.free[:n-1]
	} else {
		t.ents = append(t.ents, entry[V]{})
		i = int32(len(t.ents) - 1)
	}
	t.ents[i] = entry[V]{off: uint32(len(t.keys)), size: uint32(len(k)), next: t.index[h], live: true, v: v}
	t.keys = append(t.keys, k...)
	t.inUse += len(k)
	t.index[h] = i
	t.n++
	return true
}

// Delete removes k; it reports whether it was there.
func (t *Table[V]) Delete(k string) bool {
	if t.n == 0 {
		return false
	}
	h := t.hash(k)
	i := t.find(k, h)
	if i == 0 {
		return false
	}
	e := &t.ents[i]
	if t.index[h] == i {
		if e.next == 0 {
			delete(t.index, h)
		} else {
			t.index[h] = e.next
		}
	} else {
		for j := t.index[h]; j != 0; j = t.ents[j].next {
			if t.ents[j].next == i {
				t.ents[j].next = e.next
				break
			}
		}
	}
	t.inUse -= int(e.size)
	*e = entry[V]{}
	t.free = append(t.free, i)
	t.n--
	return true
}

// Len is the number of keys.
func (t *Table[V]) Len() int { return t.n }

// Range calls fn with each key and its value until fn returns false. The
// key is only valid during the call (strings.Clone keeps it); fn must not
// change the table.
func (t *Table[V]) Range(fn func(k string, v V) bool) {
	for i := 1; i < len(t.ents); i++ {
		if e := &t.ents[i]; e.live && !fn(t.key(e), e.v) {
			return
		}
	}
}

// compact copies the keys still used into a new slice.
func (t *Table[V]) compact() {
	keys := make([]byte, 0, t.inUse+t.inUse/4)
	for i := 1; i < len(t.ents); i++ {
		e := &t.ents[i]
		if !e.live {
			continue
		}
		off := len(keys)
		keys = append(keys, t.key(e)...)
		e.off = uint32(off)
	}
	t.keys = keys
}
