package ledger_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meterd/meterd/ledger"
	"github.com/meterd/meterd/meter"
)

// TestLedger_KillDuringCheckpoint runs a child process that appends
// events, checkpoints some, appends more, and then blocks inside the next
// checkpoint's transaction (its rows already merged, not yet committed),
// where it is SIGKILLed. The file must open with the counters equal to
// the events and pass the offline verify.
func TestLedger_KillDuringCheckpoint(t *testing.T) {
	if path := os.Getenv("METER_CHECKPOINT_CHILD"); path != "" {
		checkpointChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "meter.db")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLedger_KillDuringCheckpoint$")
	cmd.Env = append(os.Environ(), "METER_CHECKPOINT_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "in-checkpoint") {
		cmd.Process.Kill()
		t.Fatalf("child: %q %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if rep, err := ledger.VerifyFile(ctx, path); err != nil || !rep.OK || rep.Events != 300 {
		t.Fatalf("offline verify of the killed file: %+v %v", rep, err)
	}
	l := mustOpenAt(t, path)
	if cp := l.CheckpointSeq(); cp != 100 {
		t.Fatalf("checkpoint_seq %d after the kill, want the last committed one (100)", cp)
	}
	if c, err := l.Counter(ctx, "a", jan); err != nil || c.Calls != 300 {
		t.Fatalf("counter %+v (%v), want 300 calls", c, err)
	}
	if rep := mustVerify(t, l); !rep.OK || rep.Counters.Checked != 1 {
		t.Fatalf("verify after reopen: %+v", rep)
	}
}

// checkpointChild is the child side: it never returns normally.
func checkpointChild(path string) {
	block := make(chan struct{})
	inCheckpoint := false
	l, err := ledger.Open(path, ledger.Options{NodeID: "k1", CheckpointEvents: 1 << 30, CheckpointInterval: time.Hour,
		BeforeCheckpoint: func() error {
			if inCheckpoint {
				os.Stdout.WriteString("in-checkpoint\n")
				<-block // SIGKILL arrives here
			}
			return nil
		}})
	if err != nil {
		os.Stdout.WriteString("open: " + err.Error() + "\n")
		os.Exit(2)
	}
	if err := l.PutAccount(ctx, meter.Account{ID: "a", Name: "a", Email: "a@x.test", Plan: "pro"}); err != nil {
		os.Exit(2)
	}
	for i := range 300 {
		if err := l.Append(ctx, newEvent("a", jan, meter.Allowed, false), true); err != nil {
			os.Exit(2)
		}
		if i == 99 {
			if err := l.Checkpoint(ctx); err != nil {
				os.Exit(2)
			}
		}
	}
	inCheckpoint = true
	_ = l.Checkpoint(ctx)
	os.Exit(3) // not reached: killed inside the checkpoint
}
