package conn

import (
	"context"
	"strings"
	"testing"
)

// The exchange from RFC 7677 section 3 (SCRAM-SHA-256).
func TestScramSHA256RFC7677Vector(t *testing.T) {
	m := Scram{User: "user", Pass: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO"}
	sess, first, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(first), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"; got != want {
		t.Fatalf("client-first = %q, want %q", got, want)
	}
	done, final, err := sess.Next([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil || done {
		t.Fatalf("client-final: done=%v err=%v", done, err)
	}
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if string(final) != want {
		t.Fatalf("client-final = %q\nwant          %q", final, want)
	}
	done, _, err = sess.Next([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
	if err != nil || !done {
		t.Fatalf("server-final: done=%v err=%v", done, err)
	}
}

func TestScramRejectsBadServerSignature(t *testing.T) {
	m := Scram{User: "user", Pass: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO"}
	sess, _, _ := m.Start(context.Background())
	if _, _, err := sess.Next([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")); err != nil {
		t.Fatal(err)
	}
	_, _, err := sess.Next([]byte("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("want signature error, got %v", err)
	}
}

func TestScramRejectsNonceNotExtended(t *testing.T) {
	m := Scram{User: "user", Pass: "pencil", nonce: "abc"}
	sess, _, _ := m.Start(context.Background())
	if _, _, err := sess.Next([]byte("r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")); err == nil {
		t.Fatal("accepted a server nonce that does not extend ours")
	}
}

func TestScramEscapesUserName(t *testing.T) {
	m := Scram{User: "a=b,c", Pass: "p", nonce: "n"}
	_, first, _ := m.Start(context.Background())
	if got, want := string(first), "n,,n=a=3Db=2Cc,r=n"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestPlainMessage(t *testing.T) {
	_, msg, _ := Plain{User: "u", Pass: "p"}.Start(context.Background())
	if string(msg) != "\x00u\x00p" {
		t.Fatalf("got %q", msg)
	}
}
