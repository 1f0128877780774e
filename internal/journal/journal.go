// Package journal is the worker's local, fsynced record of ROX answers that
// could not yet be written to Redis.
//
// ROX's answer to a send request (which recipients it accepted, with which
// SMSId) is the one thing the worker must never lose: a message whose answer
// is lost looks unsent and would be sent again. When Redis refuses the write
// (OOM, READONLY after a failover, a dropped connection), the worker appends
// the answer here and keeps applying it until Redis takes it; only then is
// the entry marked done.
//
// # File format
//
// One append-only file, answers.log, in a directory held exclusively by one
// process (internal/dirlock). Each record is a frame:
//
//	uint32 little-endian length of body | uint32 little-endian CRC-32C of body | body (JSON)
//
// A body is {"put": Entry} or {"done": seq}. Append and Done return only after
// the frame is fsynced (and the file's directory entry too, once, when the
// file is created). Open reads every frame in order; the first frame that is
// short or fails its checksum is a torn write from a crash (never
// acknowledged to anyone) and it and anything after it are dropped. Open then
// rewrites the file with only the pending entries (write to a temporary
// file, fsync, rename, fsync the directory), and Done truncates the file to
// zero once nothing is pending, so it never grows beyond the answers of one
// outage.
package journal

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/redoxygen/roxd/internal/dirlock"
)

// FileName is the journal file inside its directory.
const FileName = "answers.log"

// maxBody bounds one frame's body (a 500-recipient answer is ~60 KB); a
// longer length field is a torn or foreign frame.
const maxBody = 16 << 20

// ErrInUse is returned by Open when another process (or another Journal in
// this one) holds the directory. It is dirlock.ErrLocked.
var ErrInUse = dirlock.ErrLocked

// ErrClosed is returned by Append and Done after Close.
var ErrClosed = errors.New("journal: closed")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Outcome is what ROX answered for one message of a batch.
type Outcome struct {
	// ID is roxd's message id.
	ID string `json:"id"`
	// Kind is "s" (submitted: Value is the SMSId), "f" (failed: Value is
	// the reason) or "r" (retry: Value is the last error).
	Kind string `json:"kind"`
	// Value depends on Kind.
	Value string `json:"value"`
}

// Entry is one ROX answer awaiting its Redis record.
type Entry struct {
	// Seq orders entries; Append assigns it, increasing while the file
	// holds anything (it starts again at 1 after the file was emptied).
	Seq uint64 `json:"seq"`
	// Batch is the batch id; Token the handler run's lock token.
	Batch string `json:"batch"`
	Token string `json:"token"`
	// RequestID is ROX's RequestID of the answer ("" when the request
	// failed as a whole).
	RequestID string `json:"request_id"`
	// At is when ROX answered (UTC, millisecond precision in practice).
	At time.Time `json:"at"`
	// Outcomes holds one outcome per message of the request, in order.
	Outcomes []Outcome `json:"outcomes"`
}

type frame struct {
	Put  *Entry `json:"put,omitempty"`
	Done uint64 `json:"done,omitempty"`
}

// Journal is an open journal directory. Its methods are safe for concurrent
// use.
type Journal struct {
	dir  string
	lock *dirlock.Lock

	mu      sync.Mutex
	f       *os.File
	size    int64
	seq     uint64
	pending map[uint64]Entry
	closed  bool
	torn    int64 // bytes dropped by Open (tests, logs)
}

// Open takes the directory (creating it 0700 if needed; ErrInUse if another
// process holds it), reads what an earlier process left and compacts the
// file. Pending returns what is still to apply.
func Open(dir string) (*Journal, error) {
	if dir == "" {
		return nil, errors.New("journal: empty directory")
	}
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{dir: dir, lock: lock, pending: map[uint64]Entry{}}
	if err := j.load(); err != nil {
		_ = lock.Unlock()
		return nil, err
	}
	if err := j.rewrite(); err != nil {
		_ = lock.Unlock()
		return nil, err
	}
	return j, nil
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// TornBytes is how many bytes at the end of the file Open dropped as a torn
// write (0 after a clean stop).
func (j *Journal) TornBytes() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.torn
}

func (j *Journal) path() string { return filepath.Join(j.dir, FileName) }

// load reads every whole frame of the file in order.
func (j *Journal) load() error {
	f, err := os.Open(j.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: open: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("journal: stat: %w", err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	var off int64
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break // EOF, or a torn header
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if n == 0 || n > maxBody {
			break
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			break
		}
		if crc32.Checksum(body, castagnoli) != sum {
			break
		}
		var fr frame
		if err := json.Unmarshal(body, &fr); err != nil {
			break
		}
		switch {
		case fr.Put != nil:
			j.pending[fr.Put.Seq] = *fr.Put
			j.seq = max(j.seq, fr.Put.Seq)
		case fr.Done != 0:
			delete(j.pending, fr.Done)
		}
		off += int64(8 + n)
	}
	j.torn = st.Size() - off
	return nil
}

// rewrite replaces the file by one holding only the pending entries, in seq
// order, and leaves it open for appends.
func (j *Journal) rewrite() error {
	tmp := j.path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: create: %w", err)
	}
	var buf []byte
	for _, e := range j.sorted() {
		if buf, err = appendFrame(buf, frame{Put: &e}); err != nil {
			_ = f.Close()
			return err
		}
	}
	_, werr := f.Write(buf)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("journal: write: %w", werr)
	}
	if err := os.Rename(tmp, j.path()); err != nil {
		return fmt.Errorf("journal: rename: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		return err
	}
	f, err = os.OpenFile(j.path(), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: open: %w", err)
	}
	j.f, j.size = f, int64(len(buf))
	return nil
}

func (j *Journal) sorted() []Entry {
	out := make([]Entry, 0, len(j.pending))
	for _, e := range j.pending {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Seq < out[b].Seq })
	return out
}

func appendFrame(dst []byte, fr frame) ([]byte, error) {
	body, err := json.Marshal(fr)
	if err != nil {
		return dst, fmt.Errorf("journal: encode: %w", err)
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(body)))
	binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(body, castagnoli))
	return append(append(dst, hdr[:]...), body...), nil
}

// write appends one frame and fsyncs it (under mu). A failed write is cut
// off again so that later frames are not glued to a torn one.
func (j *Journal) write(fr frame) error {
	if j.closed {
		return ErrClosed
	}
	buf, err := appendFrame(nil, fr)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(buf); err != nil {
		_ = j.f.Truncate(j.size)
		return fmt.Errorf("journal: write: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		// After a failed fsync the page cache state is unknown: the frame
		// may or may not be on disk. Treat it as not written.
		_ = j.f.Truncate(j.size)
		return fmt.Errorf("journal: fsync: %w", err)
	}
	j.size += int64(len(buf))
	return nil
}

// Append assigns e.Seq, writes e durably and returns it. Once Append
// returns nil, e survives a crash of the process or the machine (as far as
// fsync can promise) until Done(e.Seq).
func (j *Journal) Append(e Entry) (Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return Entry{}, ErrClosed
	}
	e.Seq = j.seq + 1
	if err := j.write(frame{Put: &e}); err != nil {
		return Entry{}, err
	}
	j.seq = e.Seq
	j.pending[e.Seq] = e
	return e, nil
}

// Done marks entry seq applied, durably. When nothing is pending any more
// the file is truncated to zero. Done of an unknown seq is a no-op.
func (j *Journal) Done(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if _, ok := j.pending[seq]; !ok {
		return nil
	}
	if len(j.pending) == 1 {
		// The last one: an empty file says the same, in one fsync.
		if err := j.f.Truncate(0); err != nil {
			return fmt.Errorf("journal: truncate: %w", err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("journal: fsync: %w", err)
		}
		j.size = 0
	} else if err := j.write(frame{Done: seq}); err != nil {
		return err
	}
	delete(j.pending, seq)
	return nil
}

// Pending returns the entries not yet done, in Seq order.
func (j *Journal) Pending() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sorted()
}

// Len is the number of pending entries.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// Close closes the file and releases the directory. Pending entries stay
// on disk for the next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	var err error
	if j.f != nil {
		err = j.f.Close()
	}
	if uerr := j.lock.Unlock(); err == nil {
		err = uerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: fsync dir: %w", err)
	}
	return nil
}
