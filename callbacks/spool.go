package callbacks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
)

const (
	spoolExt     = ".jsonl"
	rejectedName = "rejected.log" // not *.jsonl: never replayed
)

// spool is the local, append-only, fsynced store of callbacks that could not
// be written to Redis. While it holds anything it is "active": every new
// callback goes to it too, behind the older ones, so that the replayer
// delivers them to the streams in the order they were answered.
//
// Files are named <unix nanos>-<seq>.jsonl and hold one event (JSON) per
// line. Appends go to the current file; the replayer rotates it (sync,
// close) and replays closed files oldest first, removing each once every
// line is in Redis.
//
// Group commit: writers append under mu, then take syncMu; the first to get
// it fsyncs everything written so far and the others find their write
// already synced. Lock order: syncMu before mu.
type spool struct {
	dir string
	log zerolog.Logger

	syncMu sync.Mutex
	synced uint64 // generation known on disk (under syncMu)

	mu      sync.Mutex
	active  bool
	cur     *os.File
	curName string
	seq     uint64
	written uint64 // generation: appends so far (under mu)

	depth atomic.Int64
	wake  chan struct{}
}

// openSpool creates dir if needed and reports what a previous process left.
func openSpool(dir string, log zerolog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("callbacks: spool dir: %w", err)
	}
	s := &spool{dir: dir, log: log, wake: make(chan struct{}, 1)}
	names, err := s.files("")
	if err != nil {
		return nil, err
	}
	var n int64
	for _, name := range names {
		c, err := countLines(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		n += c
	}
	if len(names) > 0 {
		s.active = true
		s.log.Warn().Int("files", len(names)).Int64("callbacks", n).Msg("spool holds callbacks from an earlier run; replaying")
	}
	s.depth.Store(n)
	metrics.SpoolDepth.Set(float64(n))
	return s, nil
}

func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("callbacks: spool: %w", err)
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("callbacks: spool: %w", err)
		}
	}
}

// files lists the spool files in replay order, leaving out skip.
func (s *spool) files(skip string) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("callbacks: spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, spoolExt) && n != skip {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

func (s *spool) isActive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// append writes evs durably. Unless force, it writes only while the spool
// is active and reports whether it wrote; force makes it active. It returns
// once the lines are fsynced.
func (s *spool) append(evs []*event, force bool) (bool, error) {
	if !force && !s.isActive() {
		return false, nil // the common case: no encoding (checked again below)
	}
	var buf bytes.Buffer
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			return false, fmt.Errorf("callbacks: spool: encode: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	s.mu.Lock()
	if !force && !s.active {
		s.mu.Unlock()
		return false, nil
	}
	s.active = true
	if s.cur == nil {
		if err := s.create(); err != nil {
			s.mu.Unlock()
			return false, err
		}
	}
	if _, err := s.cur.Write(buf.Bytes()); err != nil {
		// A torn line may be left behind; start a new file so that later
		// lines are not glued to it. The torn line was never acknowledged.
		_ = s.cur.Close()
		s.cur, s.curName = nil, ""
		s.mu.Unlock()
		return false, fmt.Errorf("callbacks: spool: write: %w", err)
	}
	s.written++
	gen := s.written
	s.mu.Unlock()
	s.depth.Add(int64(len(evs)))
	metrics.SpoolDepth.Set(float64(s.depth.Load()))
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true, s.syncTo(gen)
}

// syncTo returns once generation gen is on disk, fsyncing if nobody else
// has yet.
func (s *spool) syncTo(gen uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= gen {
		return nil
	}
	s.mu.Lock()
	g, f := s.written, s.cur
	s.mu.Unlock()
	if f == nil {
		// Rotated (and so synced) since; rotate holds syncMu and sets synced.
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("callbacks: spool: fsync: %w", err)
	}
	s.synced = g
	return nil
}

// create opens a new current file (under mu) and makes its name durable.
func (s *spool) create() error {
	s.seq++
	name := fmt.Sprintf("%020d-%06d%s", time.Now().UnixNano(), s.seq%1_000_000, spoolExt)
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("callbacks: spool: create: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		return err
	}
	s.cur, s.curName = f, name
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("callbacks: spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("callbacks: spool: fsync dir: %w", err)
	}
	return nil
}

// rotate closes the current file (synced) so that the replayer may read it;
// the next append starts a new one.
func (s *spool) rotate() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	err := s.cur.Sync()
	if cerr := s.cur.Close(); err == nil {
		err = cerr
	}
	s.cur, s.curName = nil, ""
	s.synced = s.written
	if err != nil {
		return fmt.Errorf("callbacks: spool: rotate: %w", err)
	}
	return nil
}

// closedFiles lists the files the replayer may read: all but the current.
// It lists under mu: a file created by an append right after the listing
// began must not be taken for a closed one.
func (s *spool) closedFiles() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files(s.curName)
}

// tryDeactivate turns the spool off when nothing was appended since the
// last rotation and no file is left; new callbacks then go to Redis.
func (s *spool) tryDeactivate() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return false, nil
	}
	names, err := s.files("")
	if err != nil || len(names) > 0 {
		return false, err
	}
	s.active = false
	s.depth.Store(0)
	metrics.SpoolDepth.Set(0)
	return true, nil
}

// readFile calls fn for each batch of at most max events of the file, in
// order. Lines that do not decode (a torn last line after a crash: never
// acknowledged) are logged and skipped.
func (s *spool) readFile(name string, max int, fn func([]*event) error) error {
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		return fmt.Errorf("callbacks: spool: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	batch := make([]*event, 0, max)
	for {
		line, rerr := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			e := new(event)
			if err := json.Unmarshal(line, e); err != nil || e.EventID == "" || (e.Kind != KindReceipt && e.Kind != KindReply) {
				s.log.Warn().Str("file", name).Int("bytes", len(line)).Msg("skipping unreadable spool line")
				s.depth.Add(-1)
			} else {
				batch = append(batch, e)
			}
		}
		if len(batch) == max || (rerr != nil && len(batch) > 0) {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("callbacks: spool: read %s: %w", name, rerr)
		}
	}
}

// remove deletes a fully replayed file.
func (s *spool) remove(name string) error {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("callbacks: spool: %w", err)
	}
	return syncDir(s.dir)
}

// reject keeps an event Redis refused for good (not a connection problem)
// in rejected.log, so that it blocks nothing and is not lost. e is an
// *event, or the raw text of a deferred member that does not decode.
func (s *spool) reject(e any, cause error) error {
	b, err := json.Marshal(struct {
		Event any    `json:"event"`
		Error string `json:"error"`
		At    string `json:"at"`
	}{e, cause.Error(), time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return fmt.Errorf("callbacks: spool: encode: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, rejectedName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("callbacks: spool: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("callbacks: spool: %w", err)
	}
	return f.Sync()
}
