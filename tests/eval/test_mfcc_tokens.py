import jax.numpy as jnp
import librosa
import numpy as np

from audiojax.eval import mfcc_tokens


def test_mfcc_matches_librosa():
  """The jittable MFCCs (HuBERT's iteration-1 target features) equal librosa's recipe."""
  rate, frame_rate, frames = 16000, 50.0, 50
  t = np.arange(rate) / rate
  noise = 0.01 * np.random.default_rng(0).standard_normal(t.size)
  audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + noise
           ).astype(np.float32)
  hop, win, n_fft = 320, 400, 512
  left = n_fft // 2 - hop // 2  # Frame t centred on sample t * hop + hop / 2.
  padded = np.zeros(left + frames * hop + n_fft, np.float32)
  padded[left:left + audio.size] = audio
  cepstra = librosa.feature.mfcc(y=padded, sr=rate, n_mfcc=13, n_fft=n_fft, hop_length=hop,
                                 win_length=win, center=False, n_mels=40)[:, :frames]
  reference = np.concatenate(
      [cepstra] + [librosa.feature.delta(cepstra, order=k, mode="nearest") for k in (1, 2)]).T
  got = mfcc_tokens.mfcc(jnp.asarray(audio)[None], rate, frame_rate)
  assert got.shape == (1, frames, 39)
  np.testing.assert_allclose(got[0], reference, atol=1e-3)
  # The per-utterance wrapper: the same frames for every length (bucketed compilations).
  np.testing.assert_allclose(mfcc_tokens.mfcc_features(audio, rate, frame_rate)[:-4],
                             reference[:-4], atol=1e-3)
