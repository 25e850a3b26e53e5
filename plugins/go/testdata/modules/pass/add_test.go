package pass

import "testing"

func TestAdd(t *testing.T) {
	if Add(1, 2) != 3 {
		t.Fatal("1+2 != 3")
	}
}

func TestTable(t *testing.T) {
	for _, n := range []string{"one", "two"} {
		t.Run(n, func(t *testing.T) { t.Log("case", n) })
	}
}

func TestSkipped(t *testing.T) { t.Skip("not on this machine") }
