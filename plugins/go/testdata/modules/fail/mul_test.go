package fail

import "testing"

func TestMulOK(t *testing.T) {
	if Mul(2, 2) != 4 {
		t.Fatal("2*2 != 4")
	}
}

func TestMulBroken(t *testing.T) {
	t.Log("checking 3*3")
	if got := Mul(3, 3); got != 9 {
		t.Errorf("Mul(3, 3) = %d, want 9", got)
	}
}

func TestMulSub(t *testing.T) {
	t.Run("ok", func(t *testing.T) {})
	t.Run("bad", func(t *testing.T) { t.Error("subtest failed") })
}
