package wizard

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/preflight"
)

// modelState is everything the model holds by value (the steps' states,
// the viewport, the answers), printed: what View must leave as it found.
func modelState(m *Model) string {
	return fmt.Sprintf("%#v", *m)
}

// checkViewPure draws the screen twice: the model is unchanged and both
// frames are the same (View only reads; the viewport settles in Update).
func checkViewPure(t *testing.T, what string, d *driver) {
	t.Helper()
	d.hold()
	before := modelState(d.m)
	first := d.m.View()
	if after := modelState(d.m); after != before {
		t.Errorf("%s: View changed the model", what)
	}
	if second := d.m.View(); second != first {
		t.Errorf("%s: a second View differs:\n%s\n---\n%s", what, plainView(first), plainView(second))
	}
}

// TestViewIsPure walks the wizard at 60x20, where screens scroll, and on
// every screen (scrolled down, the cursor moved back into view, the live
// log followed, and a screen changed from outside Update) draws it twice.
func TestViewIsPure(t *testing.T) {
	iss := &scriptedIssuer{release: make(chan struct{})}
	d := newDriver(t, fakeDeps(iss), testConfig(false), 60, 20)
	m := d.m
	d.until("the machine facts", func() bool { return m.welcome.machine != nil })
	checkViewPure(t, "welcome", d)
	d.key("pgdown")
	checkViewPure(t, "welcome scrolled", d)
	d.key("enter")
	d.until("the addresses", func() bool { return m.address.detected })
	checkViewPure(t, "address", d)
	d.key("down")
	d.key("down")
	checkViewPure(t, "address, cursor on the last row", d)
	d.key("up")
	d.key("up")
	d.key("enter")
	d.until("the preflight report", func() bool { return m.pre.report != nil })
	checkViewPure(t, "preflight", d)
	d.key("m")
	checkViewPure(t, "preflight, map ports", d)
	d.key("n")
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	checkViewPure(t, "plan", d)
	for _, k := range []string{"challenge", "key", "email"} {
		d.key("enter")
		d.until(k, func() bool { return d.focused() == k })
	}
	d.key("enter")
	d.until("the terms question", func() bool { return m.plan.consentReady() })
	checkViewPure(t, "terms", d)
	d.key("y")
	d.until("the issue step", func() bool { return m.step == StepIssue && len(m.issue.lines) == 5 })
	checkViewPure(t, "issue running", d)
	close(iss.release)
	d.until("the failure screen", func() bool { return m.issue.phase == phaseFailed })
	checkViewPure(t, "issue failed", d)
	d.key("r")
	d.until("the production question", func() bool { return m.issue.phase == phaseAskProduction })
	checkViewPure(t, "ask production", d)
	d.key("y")
	d.until("the issued screen", func() bool { return m.issue.phase == phaseIssued })
	d.key("enter")
	d.until("the install step", func() bool { return m.step == StepInstall && m.install.prepared })
	d.key("down")
	d.key("enter") // the nginx snippet
	for range 10 {
		d.key("pgdown")
	}
	checkViewPure(t, "install, scrolled to the snippet's end", d)
	d.key("right")
	checkViewPure(t, "install, scrolled sideways", d)
	d.key("down")
	if v := d.view(); !strings.Contains(v, "› Install for apache") {
		t.Errorf("the cursor moved out of view:\n%s", v)
	}
	checkViewPure(t, "install, the cursor back in view", d)
	for _, st := range []Step{StepRenewal, StepVerify, StepSummary} {
		m.show(st) // changed outside Update: View draws it unsettled, still twice the same
		checkViewPure(t, st.String()+" shown from outside", d)
	}
	d.m.step = StepIssue
	for i := range 40 {
		d.m.issue.addEvent(d.m.theme, validatorEvent(fmt.Sprintf("66.133.109.%d:41234", i)))
	}
	checkViewPure(t, "a long log", d)
}

// TestStepsDeclared: every step before the summary is declared for both
// runners (spoken: accessible mode walks it), and every answer it offers
// once its work has run leads somewhere a step handles, or stays.
func TestStepsDeclared(t *testing.T) {
	m := New(t.Context(), Deps{}, Config{})
	defer m.Shutdown()
	for s := StepWelcome; s < StepSummary; s++ {
		if _, ok := m.handler(s).(spoken); !ok {
			t.Errorf("step %v is not declared for accessible mode (spoken)", s)
		}
	}
	if got := StepPreflight.heading(); got != "Step 3 of 9, Preflight" {
		t.Errorf("heading %q", got)
	}
	d := newDriver(t, fakeDeps(okIssuer()), testConfig(false), 80, 24)
	d.until("the addresses", func() bool { return d.m.welcome.machine != nil })
	d.key("enter")
	d.until("the addresses", func() bool { return d.m.address.detected })
	d.key("enter")
	d.until("the report", func() bool { return d.m.pre.report != nil })
	for _, sp := range []spoken{&d.m.welcome, &d.m.address, &d.m.pre, &d.m.plan} {
		q := sp.question(d.m)
		if q == nil || len(q.choices) == 0 {
			t.Errorf("%T asks nothing", sp)
			continue
		}
		for _, c := range q.choices {
			if c.next < stay || c.next >= numSteps {
				t.Errorf("%T: %q leads to %v", sp, c.value, c.next)
			}
		}
	}
}

// TestTypedAddressStaysInView: on a 60x20 terminal of an offline machine
// the Address screen's text fills the view, and the field opened with t
// (at the row index the cursor's row had) and its verdict below it are
// scrolled into view: the user sees what they type and why it is refused.
func TestTypedAddressStaysInView(t *testing.T) {
	deps := fakeDeps(nil)
	deps.DetectPublic = func(context.Context) preflight.PublicAddrs { return preflight.PublicAddrs{} }
	d := newDriver(t, deps, testConfig(false), 60, 20)
	d.release()
	d.until("the welcome screen", func() bool { return strings.Contains(plainView(d.m.View()), "step 1 of 9") })
	d.key("enter")
	d.until("the offline address screen", func() bool { return strings.Contains(plainView(d.m.View()), "No public address found") })
	d.key("t")
	if v := d.view(); !strings.Contains(v, "address:") {
		t.Errorf("the field opened with t is not in view:\n%s", v)
	}
	d.typeText("10.0.0.300")
	if v := d.view(); !strings.Contains(v, "address: 10.0.0.300") || !strings.Contains(v, "is not an IP address") {
		t.Errorf("the typed address or its verdict is not in view:\n%s", v)
	}
}
