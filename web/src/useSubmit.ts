import { useState } from "react";
import { errorText } from "./api";

/**
 * A form's submit handling, one way for every form: the page does not
 * reload, the form is busy while the work runs, the last error is cleared
 * first and a failure is reported through onError.
 */
export function useSubmit(onError: (e: string) => void) {
  const [busy, setBusy] = useState(false);
  const submit = (work: () => Promise<void>) => async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    onError("");
    try {
      await work();
    } catch (err) {
      onError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, submit };
}
