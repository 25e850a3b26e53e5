// Command spawnfloor measures the floor under the local /bin/true DAG: the
// cost of starting a program N times, J at a time, from a Go process, with
// no scheduler, RPC or plugin around it. Each mode is one way Go can spawn
// a child, from the way plugins/internal/proc does it down to the cheapest
// (syscall.ForkExec with shared /dev/null descriptors), so a run shows how
// much of a module's cost is process creation and how much is modpipe's.
//
//	go run ./bench/internal/spawnfloor -n 1000 -j 8 -rounds 5
//
// It prints, per mode, the median wall time and the CPU time of this
// process and of its children (getrusage), in the same run, the modes
// alternating round by round because the machine is shared and noisy.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// mode starts prog once and waits for it.
type mode struct {
	name string
	run  func(prog string) error
}

func main() {
	var (
		n      = flag.Int("n", 1000, "children to start per round")
		jobs   = flag.Int("j", 8, "children running at once")
		rounds = flag.Int("rounds", 5, "rounds per mode (modes alternate)")
		prog   = flag.String("prog", "/bin/true", "program to start")
		makef  = flag.String("makefile", "", "also time `make -s -j J -f MAKEFILE` in the same rounds")
	)
	flag.Parse()
	if err := run(*n, *jobs, *rounds, *prog, *makef); err != nil {
		fmt.Fprintln(os.Stderr, "spawnfloor:", err)
		os.Exit(1)
	}
}

func run(n, jobs, rounds int, prog, makefile string) error {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	modes := []mode{
		{"os/exec, own pipes, pgid, reader goroutines (like plugins/internal/proc)", procLike},
		{"os/exec, *os.File /dev/null, pgid", func(p string) error { return osExecFiles(p, devnull, true) }},
		{"os/exec, *os.File /dev/null, no pgid", func(p string) error { return osExecFiles(p, devnull, false) }},
		{"syscall.ForkExec + Wait4, os.Pipe, pgid, reader goroutines", func(p string) error { return forkExecOSPipes(p, devnull) }},
		{"syscall.ForkExec + Wait4, pipes read raw", func(p string) error { return forkExecPipes(p) }},
		{"syscall.ForkExec + Wait4, /dev/null", func(p string) error { return forkExec(p, int(devnull.Fd())) }},
	}
	type sample struct{ wall, self, children time.Duration }
	results := make([][]sample, len(modes)+1)
	for range rounds {
		for i, m := range modes {
			s0, c0 := rusage(syscall.RUSAGE_SELF), rusage(syscall.RUSAGE_CHILDREN)
			start := time.Now()
			if err := spawnAll(n, jobs, func() error { return m.run(prog) }); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			wall := time.Since(start)
			results[i] = append(results[i], sample{wall, rusage(syscall.RUSAGE_SELF) - s0, rusage(syscall.RUSAGE_CHILDREN) - c0})
		}
		if makefile != "" {
			c0 := rusage(syscall.RUSAGE_CHILDREN)
			start := time.Now()
			cmd := exec.Command("make", "-s", "-j", fmt.Sprint(jobs), "-f", makefile)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("make: %w\n%s", err, out)
			}
			results[len(modes)] = append(results[len(modes)], sample{time.Since(start), 0, rusage(syscall.RUSAGE_CHILDREN) - c0})
		}
	}
	med := func(ss []sample, f func(sample) time.Duration) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = float64(f(s).Microseconds()) / 1000
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("%d x %s, %d at a time, median of %d rounds (ms)\n", n, prog, jobs, rounds)
	fmt.Printf("%-75s %9s %9s %9s %9s\n", "mode", "wall", "self CPU", "child CPU", "CPU/child")
	for i, ss := range results {
		if len(ss) == 0 {
			continue
		}
		name := "make -s -j (its own and its children's CPU as child CPU)"
		if i < len(modes) {
			name = modes[i].name
		}
		self, child := med(ss, func(s sample) time.Duration { return s.self }), med(ss, func(s sample) time.Duration { return s.children })
		fmt.Printf("%-75s %9.1f %9.1f %9.1f %8.0fµs\n", name, med(ss, func(s sample) time.Duration { return s.wall }), self, child, (self+child)*1000/float64(n))
	}
	return nil
}

// spawnAll calls spawn n times, jobs at a time, and returns the first error.
func spawnAll(n, jobs int, spawn func() error) error {
	work := make(chan struct{})
	errs := make(chan error, jobs)
	var wg sync.WaitGroup
	for range jobs {
		wg.Go(func() {
			var first error
			for range work {
				if err := spawn(); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		})
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procLike is what plugins/internal/proc.Run does for a command that
// prints nothing: two pipes, a process group, Pdeathsig, two reader
// goroutines, cmd.Wait in a goroutine and a select on it.
func procLike(prog string) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{Path: prog, Args: []string{prog}, Env: os.Environ(), Stdout: outW, Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		return err
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); drain(outR) }()
	go func() { defer readers.Done(); drain(errR) }()
	readersDone := make(chan struct{})
	go func() { readers.Wait(); close(readersDone) }()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	ctx := context.Background()
	select {
	case err = <-waitErr:
	case <-ctx.Done():
	}
	_ = syscall.Kill(-cmd.Process.Pid, 0)
	<-readersDone
	outR.Close()
	errR.Close()
	return err
}

func drain(r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	for {
		if _, err := br.ReadSlice('\n'); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func osExecFiles(prog string, devnull *os.File, pgid bool) error {
	cmd := &exec.Cmd{Path: prog, Args: []string{prog}, Stdout: devnull, Stderr: devnull}
	if pgid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	return cmd.Run()
}

func forkExec(prog string, devnull int) error {
	pid, err := syscall.ForkExec(prog, []string{prog}, &syscall.ProcAttr{
		Env: []string{}, Files: []uintptr{uintptr(devnull), uintptr(devnull), uintptr(devnull)},
	})
	if err != nil {
		return err
	}
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, 0, nil)
	return err
}

func forkExecPipes(prog string) error {
	var out, errp [2]int
	if err := syscall.Pipe2(out[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	if err := syscall.Pipe2(errp[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	pid, err := syscall.ForkExec(prog, []string{prog}, &syscall.ProcAttr{
		Env: os.Environ(), Files: []uintptr{uintptr(out[1]), uintptr(out[1]), uintptr(errp[1])},
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	syscall.Close(out[1])
	syscall.Close(errp[1])
	if err != nil {
		return err
	}
	buf := make([]byte, 512)
	for _, fd := range []int{out[0], errp[0]} {
		for {
			n, err := syscall.Read(fd, buf)
			if n <= 0 || err != nil {
				break
			}
		}
		syscall.Close(fd)
	}
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, 0, nil)
	return err
}

// forkExecOSPipes is procLike without os/exec and os.StartProcess: the
// same pipes, process group and reader goroutines, a shared /dev/null for
// stdin, and Wait4 on the pid.
func forkExecOSPipes(prog string, devnull *os.File) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	pid, err := syscall.ForkExec(prog, []string{prog}, &syscall.ProcAttr{
		Env: os.Environ(), Files: []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()},
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	outW.Close()
	errW.Close()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { drain(errR); close(done) }()
	drain(outR)
	<-done
	waited := make(chan error, 1)
	go func() {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		waited <- err
	}()
	err = <-waited
	outR.Close()
	errR.Close()
	return err
}
