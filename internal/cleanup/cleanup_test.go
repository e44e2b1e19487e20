package cleanup

import (
	"reflect"
	"testing"
)

func TestCleanRunsInReverse(t *testing.T) {
	var got []int
	cu := Make()
	for i := 1; i <= 3; i++ {
		cu.Add(func() { got = append(got, i) })
	}
	cu.Clean()
	if want := []int{3, 2, 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("undo order = %v, want %v", got, want)
	}
	cu.Clean()
	if len(got) != 3 {
		t.Fatalf("a second Clean ran undo functions again: %v", got)
	}
}

func TestReleaseKeepsWork(t *testing.T) {
	ran := false
	cu := Make()
	cu.Add(func() { ran = true })
	cu.Release()
	cu.Clean()
	if ran {
		t.Fatal("Clean after Release undid the work")
	}
}
