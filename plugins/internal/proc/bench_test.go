//go:build unix

package proc

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRunTrue starts /bin/true 8 at a time, as the bench's local DAG
// does through the shell plugin, and reports beside the wall time per
// command the CPU of this process (self-µs/op: the spawn path's own cost)
// and of the commands (child-µs/op), which is what a change to the spawn
// path is judged by on a shared machine.
func BenchmarkRunTrue(b *testing.B) {
	cpu := func(who int) time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(who, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	self0, child0 := cpu(syscall.RUSAGE_SELF), cpu(syscall.RUSAGE_CHILDREN)
	b.SetParallelism(4) // 8 goroutines on 2 cores, like --parallelism 8
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			exit, err := Run(context.Background(), Command{Argv: []string{"/bin/true"}, Stdout: func(string) {}, Stderr: func(string) {}})
			if err != nil || exit.Code != 0 {
				b.Errorf("Run: %+v %v", exit, err)
				return
			}
		}
	})
	b.ReportMetric(float64((cpu(syscall.RUSAGE_SELF)-self0).Microseconds())/float64(b.N), "self-µs/op")
	b.ReportMetric(float64((cpu(syscall.RUSAGE_CHILDREN)-child0).Microseconds())/float64(b.N), "child-µs/op")
}
