package conn

import (
	"context"
	"strings"
	"testing"
)

// The RFC 7677 exchange, reused by the SCRAM tests and fuzz seeds.
const (
	rfcNonce       = "rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// FuzzScramServerFirst gives the client arbitrary server-first-messages. A
// malformed one must fail with an error; one that parses must produce a
// client-final-message carrying our nonce's extension and a proof, and the
// password must never appear in what the client says. Iterations are capped
// low here only to keep the fuzzer fast (the bound logic is the same).
func FuzzScramServerFirst(f *testing.F) {
	for _, s := range []string{
		rfcServerFirst,
		"m=ext," + rfcServerFirst,
		rfcServerFirst + ",x=future-extension",
		"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=,i=4096",
		"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
		"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
		"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqO%hvYD,i=4096",
		"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"", ",,,", "r=", "e=other-error",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, serverFirst string) {
		m := Scram{User: "user", Pass: "pencil-secret", nonce: rfcNonce, maxIters: 4200}
		sess, _, err := m.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		done, final, err := sess.Next([]byte(serverFirst))
		if err != nil {
			if done || final != nil {
				t.Fatalf("error %v with done=%v final=%q", err, done, final)
			}
			if strings.Contains(err.Error(), "pencil-secret") {
				t.Fatalf("error shows the password: %v", err)
			}
			return
		}
		if done || !strings.HasPrefix(string(final), "c=biws,r="+rfcNonce) || !strings.Contains(string(final), ",p=") {
			t.Fatalf("server-first %q: done=%v client-final %q", serverFirst, done, final)
		}
		if strings.Contains(string(final), "pencil-secret") {
			t.Fatalf("client-final shows the password: %q", final)
		}
	})
}

// FuzzScramServerFinal gives the client arbitrary server-final-messages
// after a valid server-first: only the RFC's exact verifier may complete
// the exchange; anything else is an error, never a panic.
func FuzzScramServerFinal(f *testing.F) {
	for _, s := range []string{
		rfcServerFinal,
		rfcServerFinal + ",x=ext",
		"e=invalid-proof",
		"e=other-error,v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"v=!!!", "v=", "", "x=1,v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, serverFinal string) {
		m := Scram{User: "user", Pass: "pencil", nonce: rfcNonce}
		sess, _, err := m.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := sess.Next([]byte(rfcServerFirst)); err != nil {
			t.Fatal(err)
		}
		done, next, err := sess.Next([]byte(serverFinal))
		valid := strings.HasPrefix(serverFinal, rfcServerFinal) &&
			(len(serverFinal) == len(rfcServerFinal) || serverFinal[len(rfcServerFinal)] == ',')
		switch {
		case err != nil && (done || next != nil):
			t.Fatalf("error %v with done=%v next=%q", err, done, next)
		case err == nil && !valid:
			t.Fatalf("accepted server-final %q", serverFinal)
		case err != nil && valid:
			t.Fatalf("refused the valid server-final %q: %v", serverFinal, err)
		}
		if _, _, err := sess.Next(nil); err == nil {
			t.Fatal("a third server message was accepted")
		}
	})
}

func TestScramRefusesIterationCountsOutsideBounds(t *testing.T) {
	for _, iters := range []string{"1", "4095", "1048577", "99999999999999999999", "-5", "x"} {
		m := Scram{User: "user", Pass: "pencil", nonce: rfcNonce}
		sess, _, _ := m.Start(context.Background())
		_, _, err := sess.Next([]byte("r=" + rfcNonce + "srv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=" + iters))
		if err == nil || !strings.Contains(err.Error(), "iterations") {
			t.Errorf("i=%s: got %v, want an iterations error", iters, err)
		}
	}
}

func TestScramRefusesMandatoryExtensionAndServerError(t *testing.T) {
	m := Scram{User: "user", Pass: "pencil", nonce: rfcNonce}
	sess, _, _ := m.Start(context.Background())
	if _, _, err := sess.Next([]byte("m=x," + rfcServerFirst)); err == nil || !strings.Contains(err.Error(), "extension") {
		t.Fatalf("mandatory extension: %v", err)
	}
	sess, _, _ = m.Start(context.Background())
	sess.Next([]byte(rfcServerFirst))
	if _, _, err := sess.Next([]byte("e=invalid-proof")); err == nil || !strings.Contains(err.Error(), `"invalid-proof"`) {
		t.Fatalf("server error: %v", err)
	}
}
