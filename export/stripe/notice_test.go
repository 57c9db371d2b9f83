package stripe_test

import (
	"context"
	"testing"
	"time"

	billing "github.com/meterd/meterd/export/stripe"
	"github.com/meterd/meterd/meter"
)

// TestService_Notices: a refused charge, the charge that follows and
// the period's close each leave exactly one billing notice in the
// outbox, whatever runs follow.
func TestService_Notices(t *testing.T) {
	f := newFixture(t, smallPro, nov1.Add(time.Hour))
	f.meter.SetNotices(&meter.NoticeConfig{Default: meter.DefaultThresholds()}, f.led)
	f.svc, f.reg = f.service(billing.Config{Notices: f.meter})
	f.account("pro1", "pro", "cus_pro1")
	f.calls("pro1", 10+1234)
	f.rec.failNext(faultRefuse)
	f.run()
	f.run()
	f.run()
	f.clock.Set(dec1)
	f.run()
	f.clock.Add(24 * time.Hour)
	f.run()
	ns, err := f.led.Notices(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[meter.NoticeType]int{}
	for _, n := range ns {
		got[n.Type]++
		if n.Type == meter.NoticeChargeCreated && (n.OverageCents != 123 || n.Detail["stripe_id"] == "") {
			t.Errorf("charge_created = %+v", n)
		}
	}
	for _, typ := range []meter.NoticeType{meter.NoticeChargeFailed, meter.NoticeChargeCreated, meter.NoticePeriodClosed, meter.NoticeOverageStarted} {
		if got[typ] != 1 {
			t.Errorf("%s notices = %d, want 1 (all: %v)", typ, got[typ], got)
		}
	}
}
