package callbacks

import (
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkCallbackHTTPFloor reports the CPU time (user plus system, of
// this process, which holds both ends) of one callback's HTTP exchange with
// nothing else done: a receipt's JSON body POSTed by fasthttp's client (as
// `roxd sim` posts ROX's callbacks) to a net/http server (as roxd serves
// its receiver) that reads it and answers ROX's 0000 body, over loopback
// keep-alive connections from 8 goroutines. It is the floor under roxd's
// plus the simulator's CPU per receipt in `roxd bench whole`:
//
//	go test -run '^$' -bench BenchmarkCallbackHTTPFloor -benchtime 200000x ./callbacks/
func BenchmarkCallbackHTTPFloor(b *testing.B) {
	answer := []byte(`{"Name":"ROX_API_Receipt_Response","Version":1.1,"Result":"0000"}`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	body := []byte(receiptBody(testAccount, "0123456789abcdef0123456789abcdef", "0000", ts1))
	url := "http://" + ln.Addr().String() + "/rox/token/receipt"
	client := &fasthttp.Client{MaxConnsPerHost: 8}
	const workers = 8
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	start := cpu()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := w; i < b.N; i += workers {
				req.Reset()
				req.SetRequestURI(url)
				req.Header.SetMethod(fasthttp.MethodPost)
				req.Header.SetContentType("application/json")
				req.SetBodyRaw(body)
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != http.StatusOK {
					b.Errorf("POST: %v (HTTP %d)", err, resp.StatusCode())
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpu()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
