package schedule

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// noopExec succeeds at once: what is left is the scheduler's own cost.
type noopExec struct{}

func (noopExec) Execute(ctx context.Context, t *Task, attempt int) coordinator.Envelope {
	return coordinator.Envelope{Status: coordinator.StatusSucceeded}
}

// layeredTasks builds n tasks in 10 layers of n/10, each task depending on
// 3 tasks of the layer above (the benchmark shape of issue 2).
func layeredTasks(n int) []*Task {
	const layers = 10
	width := n / layers
	tasks := make([]*Task, 0, n)
	for l := range layers {
		for i := range width {
			t := &Task{ID: fmt.Sprintf("m%d_%d", l, i), Order: len(tasks)}
			if l > 0 {
				for k := range 3 {
					t.Deps = append(t.Deps, []string{fmt.Sprintf("m%d_%d", l-1, (i*7+k*13)%width)})
				}
			}
			tasks = append(tasks, t)
		}
	}
	return tasks
}

func benchmarkSchedule(b *testing.B, n, parallelism int) {
	s, err := New(layeredTasks(n), noopExec{}, Options{Parallelism: parallelism})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if res := s.Run(ctx); !res.Succeeded {
			b.Fatal("run failed")
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&after)
	tasks := float64(b.N * n)
	b.ReportMetric(float64(elapsed.Nanoseconds())/tasks, "ns/task")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/tasks, "allocs/task")
}

// BenchmarkSchedule1000Noop and BenchmarkSchedule10000Noop measure the
// scheduler's overhead per task (dispatch, goroutine, completion, dependents)
// on a no-op DAG, unbounded and with 8 slots.
func BenchmarkSchedule1000Noop(b *testing.B) {
	b.Run("unbounded", func(b *testing.B) { benchmarkSchedule(b, 1000, 0) })
	b.Run("parallelism8", func(b *testing.B) { benchmarkSchedule(b, 1000, 8) })
}

func BenchmarkSchedule10000Noop(b *testing.B) {
	b.Run("unbounded", func(b *testing.B) { benchmarkSchedule(b, 10000, 0) })
	b.Run("parallelism8", func(b *testing.B) { benchmarkSchedule(b, 10000, 8) })
}

// BenchmarkNew10000 measures checking and ranking a 10,000-task graph.
func BenchmarkNew10000(b *testing.B) {
	tasks := layeredTasks(10000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(tasks, noopExec{}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tasks)), "ns/task")
}

// BenchmarkScheduleKeys10000 is the worst case for resource waiting: every
// task shares one not_in_parallel key, so each finish wakes the next.
func BenchmarkScheduleKeys10000(b *testing.B) {
	tasks := make([]*Task, 10000)
	for i := range tasks {
		tasks[i] = &Task{ID: fmt.Sprint("t", i), Order: i, Keys: []string{"db"}}
	}
	s, err := New(tasks, noopExec{}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Run(context.Background()); !res.Succeeded {
			b.Fatal("run failed")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tasks)), "ns/task")
}
